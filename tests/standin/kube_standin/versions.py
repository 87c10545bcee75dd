"""What differs between the modelled Kubernetes minors (kubeadm_facts.md §1, §2, §4, §6)."""

from __future__ import annotations

import json
import os
from typing import Any

from . import _buildinfo

PAUSE = {28: "3.9", 29: "3.9", 30: "3.9", 31: "3.10"}
COREDNS = {28: "v1.10.1", 29: "v1.11.1", 30: "v1.11.1", 31: "v1.11.3"}
ETCD_IMAGE = {28: "3.5.9-0", 29: "3.5.10-0", 30: "3.5.12-0", 31: "3.5.15-0"}
SWAP_WARNING = {
    28: "swap is enabled; production deployments should disable swap unless testing the NodeSwap feature gate of "
        "the kubelet",
    29: "swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta but disabled by "
        "default",
    30: "swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta but disabled by "
        "default",
    31: "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to "
        "https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node",
}
KUSTOMIZE = "v5.0.4-0.20230601165947-6ce0bf390ce3"


#: Set by the stand-in kubelet on a control-plane component it runs from a static pod: the version of the
#: manifest's image (registry.k8s.io/kube-apiserver:v1.31.1), so that after `kubeadm upgrade apply` the API server
#: reports the version its manifest names, not the kubelet binary's.
IMAGE_VERSION_ENV = "KUBE_STANDIN_IMAGE_VERSION"


def version() -> str:
    return os.environ.get(IMAGE_VERSION_ENV) or str(_buildinfo.VERSION)


def minor() -> int:
    return int(version().lstrip("v").split(".")[1])


def config_api() -> str:
    """The kubeadm config API version this kubeadm writes and prefers."""
    return "kubeadm.k8s.io/v1beta4" if minor() >= 31 else "kubeadm.k8s.io/v1beta3"


def pause_image() -> str:
    return f"registry.k8s.io/pause:{PAUSE[minor()]}"


def info() -> dict[str, Any]:
    """version.Info as Go prints it in JSON."""
    return {"major": "1", "minor": str(minor()), "gitVersion": version(), "gitCommit": _buildinfo.COMMIT,
            "gitTreeState": "clean", "buildDate": _buildinfo.BUILD_DATE, "goVersion": _buildinfo.GO_VERSION,
            "compiler": "gc", "platform": f"linux/{_buildinfo.ARCH or 'amd64'}"}


def info_go() -> str:
    """``&version.Info{Major:"1", ...}``: the %#v form ``kubeadm version`` prints."""
    i = info()
    return ('&version.Info{Major:"1", Minor:"%s", GitVersion:"%s", GitCommit:"%s", GitTreeState:"clean", '
            'BuildDate:"%s", GoVersion:"%s", Compiler:"gc", Platform:"%s"}'
            % (i["minor"], i["gitVersion"], i["gitCommit"], i["buildDate"], i["goVersion"], i["platform"]))


def kubectl_client_json() -> str:
    return json.dumps({"clientVersion": info(), "kustomizeVersion": KUSTOMIZE}, indent=2) + "\n"
