"""The rules of a kubeadm upgrade: the one place they are written.

The kubeadm role refuses with them on its own when run without the CLI (ansible-playbook, AWX); the provision CLI
loads this same file (provisioner/flavors/kubeadm/upgrade.py) to plan and refuse before anything changes, so both
say the same thing for the same cluster. The health and etcd quorum rules are the K3s upgrade's (written once in
roles/k3s_upgrade/filter_plugins/k3s_upgrade_filters.py, loaded from there): what "healthy enough to take one node
down" means does not depend on the distribution. Standard library only, on purpose.

kubeadm's own order (kubeadm_facts.md §7): kubeadm first, `kubeadm upgrade apply` on the first control plane, then
`kubeadm upgrade node` on the other control planes, then each node's kubelet; one minor at a time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(role: str, name: str) -> ModuleType:
    path = Path(__file__).resolve().parents[2] / role / "filter_plugins" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"provision_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_GRAMMAR = _load("kubeadm", "kubeadm_version")
_SHARED = _load("k3s_upgrade", "k3s_upgrade_filters")


def version_key(text: str) -> list[int]:
    """[major, minor, patch] of the first Kubernetes version in `text`; [] when there is none."""
    found = _GRAMMAR.version_in(str(text or ""))
    return [1, *(int(n) for n in found[3:].split("."))] if found else []


def version_refusals(versions: dict[str, str], cluster_version: str, target: str) -> list[str]:
    """Downgrades and skipped minors. `versions`: node name -> kubelet version; `cluster_version`: the control
    plane's (kubeadm-config), which must not be more than one minor behind the target either."""
    want = version_key(target)
    problems: list[str] = []
    have_all = {name: version_key(text) for name, text in versions.items() if version_key(text)}
    for name, have in have_all.items():
        if have > want:
            problems.append(f"{name} runs {versions[name]}, newer than {target}: kubeadm clusters are not downgraded "
                            "(restore a backup taken on the older version instead)")
    cluster = version_key(cluster_version)
    if cluster and cluster > want:
        problems.append(f"the control plane runs {cluster_version}, newer than {target}: kubeadm clusters are not "
                        "downgraded")
    older = [key for key in [*have_all.values(), cluster] if key and key < want]
    if older:
        oldest = min(older)
        if want[1] - oldest[1] > 1:
            chain = [f"the latest v1.{minor}" for minor in range(oldest[1] + 1, want[1])]
            problems.append(
                f"{target} would skip a minor version from v1.{oldest[1]} (kubeadm upgrades one minor at a time): "
                f"upgrade to {', then '.join([*chain, target])}"
            )
    return problems


def upgrade_refusals(node_list: dict[str, Any], cluster_version: str, target: str, servers: list[str],
                     agents: list[str], embedded_etcd: bool, unreachable: list[str] | None = None) -> list[str]:
    """The rules applied to `kubectl get nodes -o json` and the kubeadm-config version: why the upgrade to `target`
    must not start; [] when it may. Health only matters while some node still has to move. `unreachable`: hosts
    Ansible could not reach (the CLI knows them; the playbook stops on them by itself)."""
    registered = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    versions = {name: registered[name].get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
                for name in [*servers, *agents] if name in registered}
    problems = version_refusals(versions, cluster_version, target)
    want = version_key(target)
    done = version_key(cluster_version) == want and all(
        name in versions and version_key(versions[name]) == want for name in [*servers, *agents])
    if done:
        return problems
    ready = set(_SHARED.ready_names(list(registered.values())))
    nodes = [{"name": name, "role": role, "registered": name in registered, "ready": name in ready,
              "reachable": name not in (unreachable or [])}
             for names, role in ((servers, "server"), (agents, "agent")) for name in names]
    # One stacked etcd member has no quorum to lose: the API pauses while kubeadm restarts it (the plan says so).
    return problems + list(_SHARED.health_refusals(nodes, embedded_etcd and len(servers) > 1))


def _selects(budget: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether a PodDisruptionBudget's selector may select the pod: same namespace and matchLabels met (a selector
    with matchExpressions is taken to select it: naming one budget too many beats missing the one that blocks)."""
    if budget["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    selector = (budget.get("spec") or {}).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def blocking_budgets(budget_list: dict[str, Any], pod_list: dict[str, Any]) -> list[str]:
    """The PodDisruptionBudgets that allow no disruption now and select a pod still on the node (`kubectl get pdb
    -A -o json`, `kubectl get pods -A --field-selector spec.nodeName=<node> -o json`), as
    'PodDisruptionBudget ns/name (needs N healthy pods, has M)'."""
    pods = pod_list.get("items", [])
    found = []
    for budget in budget_list.get("items", []):
        status = budget.get("status") or {}
        if int(status.get("disruptionsAllowed", 0)) > 0 or not any(_selects(budget, pod) for pod in pods):
            continue
        meta = budget["metadata"]
        found.append(f"PodDisruptionBudget {meta.get('namespace')}/{meta['name']} (needs "
                     f"{status.get('desiredHealthy', '?')} healthy pods, has {status.get('currentHealthy', '?')})")
    return found


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kubeadm_upgrade_refusals": upgrade_refusals, "kubeadm_version_key": version_key,
                "kubeadm_blocking_budgets": blocking_budgets}
