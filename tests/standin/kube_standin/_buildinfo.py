"""Development defaults; build_kube.py writes the real values into the zipapp."""

TOOL = "kubeadm"
VERSION = "v1.30.2"
COMMIT = "0000000000000000000000000000000000000000"
GO_VERSION = "go1.22.4"
BUILD_DATE = "2024-06-11T20:20:00Z"
ARCH = ""  # empty: no architecture check when run from the source tree
