"""Development defaults; build.py writes the real values into the zipapp."""

VERSION = "v1.28.4+k3s2"
COMMIT = "00000000"
GO_VERSION = "go1.20.11"
ARCH = ""  # empty: no architecture check when run from the source tree
