"""``kubeadm upgrade plan|apply|node``: the paths the product takes, with kubeadm's refusals (kubeadm_facts.md §7).

Modelled:
- the version policy of ``upgrade apply`` (and ``upgrade plan <version>``): a target more than one minor above the
  cluster's version or one minor above kubeadm is fatal; a target newer than kubeadm within its minor, kubeadm newer
  than the target's minor, and kubelets more than three minors older are errors that only ``--force`` passes;
- the health check that every control-plane node is Ready;
- the cluster's version and configuration read from the ``kubeadm-config`` ConfigMap, decoded by this kubeadm (a
  kubeadm too old for the config API the cluster stores fails to read it, as a real one does);
- each static pod manifest rewritten to the target (the image tag: the stand-in's manifests differ by nothing else
  between minors), the old one backed up under /etc/kubernetes/tmp, then a wait for the kubelet to run the new
  manifest (a ``kube-standin-pod-<name>`` unit started from the new manifest's hash, standing for the mirror pod's
  hash real kubeadm watches) and, for the API server, for it to answer at the target version; a timeout puts the
  old manifest back and fails as kubeadm's rollback does;
- ``kubeadm-config`` and ``kubelet-config`` rewritten by ``apply``, /var/lib/kubelet/config.yaml by ``apply`` and
  ``node``; CoreDNS and kube-proxy upgraded only once every control plane runs the target (real kubeadm reads the
  API server mirror pods' images; the stand-in asks each control plane's API server for its version).

Not modelled: image pre-pull, certificate renewal (``--certificate-renewal``), the etcd data backup kubeadm takes
before upgrading etcd, ``upgrade diff``, phases of ``upgrade node``, the interactive version picker of ``plan``.
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
import sys
import time
from typing import Any

import yaml

from . import addons, host, manifests, pki, pods, versions
from .client import Api, ApiError
from .config import Config, ConfigError, _check_version, _cluster_doc

Json = dict[str, Any]
K8S = "/etc/kubernetes"
MANIFESTS = f"{K8S}/manifests"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
UPGRADE_SECONDS = 300.0  # timeouts.upgradeManifests: 5m0s
KUBELET_SKEW = 3


class UpgradeError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _parts(version: str) -> tuple[int, int]:
    text = version.lstrip("v")
    major_minor_patch = text.split("-")[0].split("+")[0].split(".")
    return int(major_minor_patch[1]), int(major_minor_patch[2])


def policy(target: str, kubeadm_version: str, cluster_version: str, kubelets: list[str]) -> tuple[list[str], list[str]]:
    """(fatal, skippable) findings of kubeadm's version policy for upgrading to ``target``."""
    fatal: list[str] = []
    skippable: list[str] = []
    new, tool, cluster = _parts(target), _parts(kubeadm_version), _parts(cluster_version)
    if tool[0] > new[0]:
        skippable.append(f"Kubeadm version {kubeadm_version} can only be used to upgrade to Kubernetes version 1.{tool[0]}")
    if new[0] > cluster[0] + 1:
        fatal.append(f'Specified version to upgrade to "{target}" is too high; kubeadm can upgrade only 1 minor '
                     "version at a time")
    if cluster[0] > new[0] + 1:
        fatal.append(f'Specified version to downgrade to "{target}" is too low; kubeadm can downgrade only 1 minor '
                     "version at a time")
    if tool < new:
        if tool[0] < new[0]:
            fatal.append(f'Specified version to upgrade to "{target}" is at least one minor release higher than the '
                         f"kubeadm minor release ({new[0]} > {tool[0]}). Such an upgrade is not supported")
        else:
            skippable.append(f'Specified version to upgrade to "{target}" is higher than the kubeadm version '
                             f'"{kubeadm_version}". Upgrade kubeadm first using the tool you used to install kubeadm')
    too_old = sorted({k for k in kubelets if _parts(k)[0] < new[0] - KUBELET_SKEW})
    if too_old:
        skippable.append(f"There are kubelets in this cluster that are too old that have these versions [{' '.join(too_old)}]")
    return fatal, skippable


def _enforce(target: str, cluster_version: str, kubelets: list[str], force: bool) -> None:
    fatal, skippable = policy(target, versions.version(), cluster_version, kubelets)
    if fatal:
        raise UpgradeError("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n"
                           + "".join(f"\t- {item}\n" for item in fatal)
                           + "\nPlease fix the misalignments highlighted above and try upgrading again")
    if skippable and not force:
        raise UpgradeError("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
                           + "".join(f"\t- {item}\n" for item in skippable)
                           + "\nCan be bypassed if you pass the --force flag")
    for item in skippable:
        out(f"[upgrade/version] Found {len(skippable)} potential version compatibility errors but skipping since the "
            f"--force flag is set: \n\n\t- {item}")


# ---- reading the cluster ----------------------------------------------------------------------------------------


def _api(path: str, server: str = "") -> Api:
    """A client with the credentials of the kubeconfig at ``path``, for its server or for ``server``."""
    file = host.path(path)
    if not file.exists():
        raise UpgradeError(f'couldn\'t create a Kubernetes client from file "{path}": failed to load admin kubeconfig: '
                           f"open {path}: no such file or directory")
    kc = pki.read_kubeconfig(file)
    return Api(server or kc["server"], kc["ca"] or None, kc.get("cert", b""), kc.get("key", b""), kc.get("token", ""),
               timeout=5 if server else 10)


def _read_config(api: Api) -> tuple[Config, str]:
    """The ClusterConfiguration stored in kubeadm-config, decoded by this kubeadm; (config, kubelet config text)."""
    out("[upgrade/config] Reading configuration from the cluster...")
    out("[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
        "-o yaml'")
    return _fetch_config(api, "[upgrade/config] FATAL: ")


def _fetch_config(api: Api, prefix: str) -> tuple[Config, str]:
    """kubeadm-config's ClusterConfiguration decoded by this kubeadm, and kubelet-config's text."""
    try:
        stored = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        kubelet = api.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    except (ApiError, OSError) as exc:
        raise UpgradeError(f"{prefix}unable to fetch the kubeadm-config ConfigMap: {exc}") from exc
    doc = yaml.safe_load((stored.get("data") or {}).get("ClusterConfiguration", "")) or {}
    cfg = Config()
    try:
        _cluster_doc(cfg, doc, _check_version(doc))
    except ConfigError as exc:
        raise UpgradeError(f"{prefix}unable to fetch the kubeadm-config ConfigMap: {exc}") from exc
    return cfg, str((kubelet.get("data") or {}).get("kubelet", ""))


def _nodes(api: Api) -> list[Json]:
    return list(api.get("/api/v1/nodes").get("items") or [])


def _is_control_plane(node: Json) -> bool:
    return "node-role.kubernetes.io/control-plane" in (node.get("metadata", {}).get("labels") or {})


def _ready(node: Json) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions") or [])


def _health(api: Api) -> None:
    out("[upgrade] Running cluster health checks")
    not_ready = sorted(n["metadata"]["name"] for n in _nodes(api) if _is_control_plane(n) and not _ready(n))
    if not_ready:
        raise UpgradeError("[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n"
                           f"\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: "
                           f"[{' '.join(not_ready)}]\n[preflight] If you know what you are doing, you can make a check "
                           "non-fatal with `--ignore-preflight-errors=...`")


def _kubelet_versions(api: Api) -> list[str]:
    return [str(n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")) for n in _nodes(api)]


# ---- static pods --------------------------------------------------------------------------------------------------


def _image_for(component: str, cfg: Config, target: str) -> str:
    if component == "etcd":
        return f"{cfg.image_repository}/etcd:{versions.ETCD_IMAGE[_parts(target)[0]]}"
    return f"{cfg.image_repository}/{component}:{target}"


def _unit_runs(component: str, digest: str) -> bool:
    result = host.systemctl("show", pods.unit(component), "-p", "ActiveState", "-p", "Description")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return values.get("ActiveState") == "active" and values.get("Description", "").endswith(f"(manifest {digest})")


def _answers_at(api: Api, target: str) -> bool:
    try:
        return str(api.get("/version").get("gitVersion")) == target
    except (ApiError, OSError, ValueError):
        return False


def _wait(what: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if what():
                return True
        except Exception:  # noqa: S110 - polling: any failure means "not yet"
            pass
        time.sleep(1)
    return False


def _upgrade_static_pods(cfg: Config, target: str, local_api: Api | None, stamp: str) -> None:
    manifest_dir = host.path(MANIFESTS)
    backup = host.path(f"{K8S}/tmp/kubeadm-backup-manifests-{stamp}")
    names = [c for c in ("etcd", *COMPONENTS) if (manifest_dir / f"{c}.yaml").exists()]
    out(f'[upgrade/staticpods] Writing new Static Pod manifests to "{K8S}/tmp/kubeadm-upgraded-manifests{stamp}"')
    for component in names:
        path = manifest_dir / f"{component}.yaml"
        old = path.read_bytes()
        pod = yaml.safe_load(old)
        pod["spec"]["containers"][0]["image"] = _image_for(component, cfg, target)
        new = manifests.dump(pod).encode()
        if new == old:
            out(f"[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade")
            continue
        out(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
        backup.mkdir(parents=True, exist_ok=True)
        (backup / path.name).write_bytes(old)
        host.write(path, new, 0o600)
        out(f'[upgrade/staticpods] Moved new manifest to "{MANIFESTS}/{path.name}" and backed up old manifest to '
            f'"{K8S}/tmp/kubeadm-backup-manifests-{stamp}/{path.name}"')
        out("[upgrade/staticpods] Waiting for the kubelet to restart the component")
        out(f"[upgrade/staticpods] This can take up to {int(UPGRADE_SECONDS // 60)}m0s")
        digest = hashlib.sha256(new).hexdigest()[:12]
        ok = _wait(lambda: _unit_runs(component, digest), UPGRADE_SECONDS)
        if ok and component == "kube-apiserver" and local_api is not None:
            ok = _wait(lambda: _answers_at(local_api, target), UPGRADE_SECONDS)
        if not ok:
            host.write(path, old, 0o600)
            raise UpgradeError("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover "
                               "everything into the earlier state. Errors faced: failed to obtain static Pod hash for "
                               f"component {component}: timed out waiting for the condition")
        out(f"[apiclient] Found 1 Pods for label selector component={component}")
        out(f'[upgrade/staticpods] Component "{component}" upgraded successfully!')


def _write_kubelet_config(text: str, stamp: str) -> None:
    path = host.path(KUBELET_CONFIG)
    if path.exists():
        backup = host.path(f"{K8S}/tmp/kubeadm-kubelet-config{stamp}")
        backup.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, backup / "config.yaml")
        out(f'[upgrade] Backing up kubelet config file to {K8S}/tmp/kubeadm-kubelet-config{stamp}/config.yaml')
    out(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    host.write(path, text)


def _local_api(conf: str) -> Api | None:
    """This control plane's own API server (the manifest's advertise address), to see it answer the new version."""
    path = host.path(f"{MANIFESTS}/kube-apiserver.yaml")
    try:
        pod = yaml.safe_load(path.read_text())
        endpoint = pod["metadata"]["annotations"]["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    return _api(conf, f"https://{endpoint}")


def _unupgraded_control_planes(admin: Api, conf: str, target: str) -> list[str]:
    """Control planes whose API server does not answer at ``target`` (real kubeadm reads their mirror pods)."""
    behind = []
    for node in _nodes(admin):
        if not _is_control_plane(node):
            continue
        address = next((a["address"] for a in node.get("status", {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), "")
        if not _answers_at(_api(conf, f"https://{address}:6443"), target):
            behind.append(str(node["metadata"]["name"]))
    return sorted(behind)


def _addons(admin: Api, conf: str, cfg: Config, target: str) -> None:
    behind = _unupgraded_control_planes(admin, conf, target)
    if behind:
        out(f"[upgrade/addons] skip upgrade addons because control plane instances [{' '.join(behind)}] have not "
            "been upgraded")
        return
    cfg.kubernetes_version = target
    addons.coredns(admin, cfg)
    out("[addons] Applied essential addon: CoreDNS")
    addons.kube_proxy(admin, cfg, admin.server)  # admin.conf names the controlPlaneEndpoint, as init's kube-proxy
    out("[addons] Applied essential addon: kube-proxy")


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")


# ---- commands -------------------------------------------------------------------------------------------------------


ADMIN = f"{K8S}/admin.conf"


def _prelude() -> tuple[Api, Config, str]:
    out("[preflight] Running pre-flight checks.")
    admin = _api(ADMIN)
    cfg, kubelet = _read_config(admin)
    return admin, cfg, kubelet


def plan(target: str | None) -> int:
    admin, cfg, _ = _prelude()
    _health(admin)
    out("[upgrade] Fetching available versions to upgrade to")
    cluster = cfg.kubernetes_version
    out(f"[upgrade/versions] Cluster version: {cluster.lstrip('v')}")
    out(f"[upgrade/versions] kubeadm version: {versions.version()}")
    wanted = target or versions.version()
    _enforce(wanted, cluster, _kubelet_versions(admin), force=False)
    out(f"[upgrade/versions] Target version: {wanted}")
    out(f"[upgrade/versions] Latest version in the v1.{_parts(cluster)[0]} series: {cluster}")
    out("\nComponents that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade "
        "apply':\nCOMPONENT   NODE      CURRENT   TARGET")
    for node in _nodes(admin):
        out(f"kubelet     {node['metadata']['name']:<9} {node['status']['nodeInfo']['kubeletVersion']:<9} {wanted}")
    out("\nUpgrade to the latest stable version:\n\nCOMPONENT                 NODE      CURRENT   TARGET")
    for component in COMPONENTS:
        out(f"{component:<25} {'':<9} {cluster:<9} {wanted}")
    out(f"\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {wanted}\n")
    out("_" * 78)
    return 0


def apply(target: str, yes: bool, force: bool) -> int:
    if not target:
        raise UpgradeError("missing one or more required arguments. Required arguments: [version]")
    if not target.startswith("v"):
        target = "v" + target
    admin, cfg, kubelet_text = _prelude()
    _health(admin)
    out(f'[upgrade/version] You have chosen to change the cluster version to "{target}"')
    out(f"[upgrade/versions] Cluster version: {cfg.kubernetes_version}")
    out(f"[upgrade/versions] kubeadm version: {versions.version()}")
    _enforce(target, cfg.kubernetes_version, _kubelet_versions(admin), force)
    if not yes:
        sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise UpgradeError("won't proceed; the user didn't answer (Y|y) in order to continue")
    out("[upgrade/prepull] Pulling images required for setting up a Kubernetes cluster")
    out(f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target}" (timeout: 5m0s)...')
    stamp = _stamp()
    _upgrade_static_pods(cfg, target, _local_api(ADMIN), stamp)
    cfg.kubernetes_version = target
    from .kubeadm import Node, _put_configmap, cluster_configuration  # noqa: PLC0415 - the command module imports us

    out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    _put_configmap(admin, "kube-system", "kubeadm-config",
                   {"ClusterConfiguration": cluster_configuration(cfg, target, Node("", "", 0))})
    cfg.kubelet = yaml.safe_load(kubelet_text) or {}
    kubelet = manifests.kubelet_config(cfg)
    out('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the '
        "kubelets in the cluster")
    _put_configmap(admin, "kube-system", "kubelet-config", {"kubelet": kubelet})
    _write_kubelet_config(kubelet, stamp)
    out("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get "
        "long term certificate credentials")
    _addons(admin, ADMIN, cfg, target)
    out(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n')
    out("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you "
        "haven't already done so.")
    return 0


def node() -> int:
    control_plane = host.path(f"{MANIFESTS}/kube-apiserver.yaml").exists()
    out("[upgrade] Reading configuration from the cluster...")
    out("[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'")
    conf = ADMIN if control_plane else f"{K8S}/kubelet.conf"
    api = _api(conf)
    cfg, kubelet_text = _fetch_config(api, "")
    target = cfg.kubernetes_version
    out("[preflight] Running pre-flight checks")
    stamp = _stamp()
    if control_plane:
        out("[preflight] Pulling images required for setting up a Kubernetes cluster")
        out(f'[upgrade] Upgrading your Static Pod-hosted control plane instance to version "{target}"...')
        _upgrade_static_pods(cfg, target, _local_api(conf), stamp)
        out("[upgrade] The control plane instance for this node was successfully updated!")
    else:
        out("[preflight] Skipping prepull. Not a control plane node.")
        out("[upgrade] Skipping phase. Not a control plane node.")
    _write_kubelet_config(kubelet_text, stamp)
    if control_plane:
        _addons(api, conf, cfg, target)
    out("[upgrade] The configuration for this node was successfully updated!")
    out("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0


def run(positional: list[str], yes: bool, force: bool) -> int:
    """``kubeadm upgrade <sub> [version]``: the exit code; kubeadm's messages on stdout/stderr."""
    sub = positional[1] if len(positional) > 1 else ""
    version = positional[2] if len(positional) > 2 else ""
    try:
        if sub == "plan":
            return plan(version or None)
        if sub == "apply":
            return apply(version, yes, force)
        if sub == "node":
            return node()
    except UpgradeError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{exc}\nTo see the stack trace of this error execute with --v=5 or higher\n")
        return exc.code
    if not sub:
        out("Upgrade your cluster smoothly to a newer version with this command")
        return 0
    sys.stderr.write(f'unknown command "{sub}" for "kubeadm upgrade"\n')
    return 1

