"""What the shared node_prep role installs, read from the role and the flavors' prepare playbooks (never restated):
`reset` leaves these packages on the hosts and lists them in its report."""

from __future__ import annotations

from typing import Any

import yaml

from provisioner.paths import playbook_dir, role_file


def _load(loader: Any) -> Any:
    try:
        return loader()
    except (OSError, yaml.YAMLError):
        return None


def base_packages() -> list[str]:
    """node_prep_packages from the role's defaults (what every node gets, either flavor)."""
    defaults = _load(lambda: yaml.safe_load(role_file("node_prep", "defaults", "main.yml").read_text()))
    return [str(p) for p in (defaults or {}).get("node_prep_packages", [])]


def flavor_packages(prepare_playbook: str) -> list[str]:
    """node_prep_flavor_packages as the flavor's prepare playbook passes them to the role."""
    plays = _load(lambda: yaml.safe_load((playbook_dir() / prepare_playbook).read_text()))
    found: list[str] = []
    for play in plays or []:
        for role in (play or {}).get("roles") or []:
            if isinstance(role, dict) and role.get("role") == "node_prep":
                found += [str(p) for p in (role.get("vars") or {}).get("node_prep_flavor_packages", [])]
    return found
