"""system-upgrade-controller Plans for `provision upgrade --strategy plan`.

The manifests come from the k3s_upgrade role's template (playbooks/roles/k3s_upgrade/templates/suc-plans.yaml.j2),
which the role renders with Ansible's template module before applying it on the first server. The CLI renders the
same file here, with Jinja2 set up the way that module sets it up, to show or write the manifests (`--dry-run`,
`--plan-out`) without contacting any host. The variable names are the ones the role passes to the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from provisioner.inventory import Cluster
from provisioner.paths import role_file

NAMESPACE = "system-upgrade"
PLAN_CRD = "plans.upgrade.cattle.io"
SERVER_PLAN = "k3s-server"
AGENT_PLAN = "k3s-agent"


def plan_template() -> Path:
    """The role's Plan template, the one the k3s_upgrade role renders too."""
    return role_file("k3s_upgrade", "templates", "suc-plans.yaml.j2")


@dataclass(frozen=True)
class PlanSettings:
    """What the Plans say: the target release, the image that applies it, and how agents are taken down."""

    version: str
    image: str
    agent_concurrency: int = 1
    drain: bool = True
    drain_timeout_s: int = 120

    @classmethod
    def for_cluster(
        cls, cluster: Cluster, version: str, *, max_unavailable: int, drain: bool, drain_timeout_s: int
    ) -> PlanSettings:
        """The settings an upgrade of `cluster` to `version` uses; the image comes from k3s_upgrade_image."""
        return cls(
            version=version,
            image=cluster.k3s.upgrade_image,
            agent_concurrency=max_unavailable,
            drain=drain,
            drain_timeout_s=drain_timeout_s,
        )

    def template_vars(self) -> dict[str, object]:
        """The template's inputs, named as the role names them (tasks/plan.yml)."""
        return {
            "_k3s_upgrade_plan_version": self.version,
            "_k3s_upgrade_plan_image": self.image,
            "_k3s_upgrade_plan_concurrency": self.agent_concurrency,
            "_k3s_upgrade_plan_drain": self.drain,
            "_k3s_upgrade_plan_drain_timeout": self.drain_timeout_s,
        }


def render_plans(settings: PlanSettings, template: Path | None = None) -> str:
    """The two Plans (server, then agent) as one multi-document YAML text."""
    template = template or plan_template()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template.parent),
        # As Ansible's template module: blocks eat their newline, the file's last newline stays, and an unknown
        # variable is an error rather than an empty string. The output is YAML, never HTML: nothing to escape.
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701
    )
    return environment.get_template(template.name).render(settings.template_vars())
