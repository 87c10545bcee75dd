"""Pure syntax checks for names the cluster will see: labels, taints, DNS names, k3s versions and channels.

Each function returns None when the text is fine, or a short reason. The Kubernetes rules restated here are the
ones the API server and kubelet enforce (apimachinery validation), so a bad label is refused here instead of by a
kubelet that then does not start.
"""

from __future__ import annotations

import ipaddress
import re

from provisioner.grammar import k3s_version_form
from provisioner.inventory.model import TAINT_EFFECTS

CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CHANNEL_RE = re.compile(r"^(stable|latest|testing|v\d+\.\d+)$")
MAX_LABEL_LENGTH = 63  # DNS-1123 label, label name and label value
MAX_SUBDOMAIN_LENGTH = 253
# An image repository as container runtimes read it (the distribution reference grammar) without tag or digest:
# an optional registry host[:port]/, then lower-case path components. The k3s_upgrade role asserts the same pattern
# (roles/k3s_upgrade/vars/main.yml).
_IMAGE_HOST_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IMAGE_REGISTRY = rf"(?:{_IMAGE_HOST_PART}(?:\.{_IMAGE_HOST_PART})*(?::\d+)?/)?"
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REPOSITORY_RE = re.compile(rf"^{_IMAGE_REGISTRY}{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*$")

# kubelet refuses --node-labels in these namespaces unless the label is one of its own (IsKubeletLabel).
_KUBELET_RESTRICTED = ("kubernetes.io", "k8s.io")
_KUBELET_ALLOWED_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
_KUBELET_ALLOWED_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
    }
)


def _in_namespace(domain: str, namespaces: tuple[str, ...]) -> bool:
    return any(domain == ns or domain.endswith("." + ns) for ns in namespaces)


def dns_subdomain_problem(text: str) -> str | None:
    """RFC 1123 subdomain as Kubernetes uses it for label prefixes."""
    if len(text) > MAX_SUBDOMAIN_LENGTH:
        return "is longer than 253 characters"
    if not all(_DNS_LABEL_RE.match(part) for part in text.split(".")):
        return "must be lower-case DNS labels (a-z, 0-9, '-') separated by dots"
    return None


def node_name_problem(name: str) -> str | None:
    """A Kubernetes Node name: a DNS-1123 subdomain (lower-case labels of a-z, 0-9 and '-', dots between)."""
    return dns_subdomain_problem(name)


def suggest_node_name(name: str) -> str:
    """The nearest valid node name: lower case, other characters as '-', no '-' at label ends."""
    labels = [re.sub(r"[^a-z0-9-]+", "-", part.lower()).strip("-") for part in name.split(".")]
    return ".".join(label for label in labels if label)[:MAX_SUBDOMAIN_LENGTH] or "node-1"


def label_key_problem(key: str) -> str | None:
    """A label or taint key: optional ``prefix/`` (a DNS subdomain) and a name of at most 63 characters."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "has an empty prefix before '/'"
    if prefix and (reason := dns_subdomain_problem(prefix)):
        return f"prefix {prefix!r} {reason}"
    if not name:
        return "has an empty name"
    if len(name) > MAX_LABEL_LENGTH:
        return "name part is longer than 63 characters"
    if not _QUALIFIED_NAME_RE.match(name):
        return "name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    return None


def label_value_problem(value: str) -> str | None:
    """A label value: empty, or at most 63 characters of the qualified-name alphabet."""
    if value == "":
        return None
    if len(value) > MAX_LABEL_LENGTH:
        return "is longer than 63 characters"
    if not _QUALIFIED_NAME_RE.match(value):
        return "must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    return None


def kubelet_label_problem(key: str) -> str | None:
    """kubelet refuses to start with node labels in the kubernetes.io / k8s.io namespaces it does not own."""
    domain = key.rpartition("/")[0]
    if not domain or not _in_namespace(domain, _KUBELET_RESTRICTED):
        return None
    if key in _KUBELET_ALLOWED_LABELS or _in_namespace(domain, _KUBELET_ALLOWED_NAMESPACES):
        return None
    return "is in a kubernetes.io/k8s.io namespace that kubelet refuses in --node-labels, so the node would not start"


def taint_problem(taint: str) -> str | None:
    """A taint in k3s's ``node-taint`` form: ``key[=value]:Effect``."""
    body, colon, effect = taint.rpartition(":")
    if not colon:
        return "has no ':Effect' part"
    if effect not in TAINT_EFFECTS:
        return f"effect {effect!r} is not one of {', '.join(TAINT_EFFECTS)}"
    key, _, value = body.partition("=")
    if reason := label_key_problem(key):
        return f"key {key!r} {reason}"
    if reason := label_value_problem(value):
        return f"value {value!r} {reason}"
    return None


def host_address_problem(text: str) -> str | None:
    """A host name or an IP address, as used for the API endpoint (no scheme, no port)."""
    if "://" in text:
        return "must be a host name or IP address, not a URL"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return None
    if ":" in text:
        return "must not carry a port (the API port is 6443)"
    if len(text) > MAX_SUBDOMAIN_LENGTH or not all(_HOST_LABEL_RE.match(part) for part in text.rstrip(".").split(".")):
        return "is neither an IP address nor a valid DNS name"
    return None


def version_fix(text: str) -> str:
    """How to turn a near-miss into a k3s release name (``1.28.4`` -> ``v1.28.4+k3s1``)."""
    if re.fullmatch(r"v?\d+\.\d+", text):
        minor = text if text.startswith("v") else "v" + text
        return f"pin a release such as {minor}.4+k3s1, or set k3s_channel: {minor} to follow that minor line"
    candidate = re.fullmatch(r"v?(\d+\.\d+\.\d+)-rc\d+(?:[-+._]?k3s\d+)?", text)
    if candidate:
        return (
            f"release candidates are not installed by provision; pin a release such as v{candidate.group(1)}+k3s1 "
            "once it is out"
        )
    match = re.fullmatch(r"v?(\d+\.\d+\.\d+)(?:[-+._]?k3s(\d+))?", text)
    if match:
        build = match.group(2) or "1"
        return f"write it as v{match.group(1)}+k3s{build} (check the exact build on the k3s releases page)"
    return f"use the form {k3s_version_form()}"


def image_repository_problem(text: str) -> str | None:
    """An image repository without a tag or digest (the system-upgrade-controller appends the version as the tag)."""
    if "@" in text or ":" in text.rsplit("/", 1)[-1]:
        return "carries a tag or digest; the system-upgrade-controller adds the target version as the tag"
    if not IMAGE_REPOSITORY_RE.match(text):
        return "is not an image repository name ([registry[:port]/]path in lower case)"
    return None
