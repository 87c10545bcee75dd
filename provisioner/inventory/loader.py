"""load_inventory: the one inventory file -> a validated Cluster, or an InventoryError holding every problem.

Order of work: read the file; the plain YAML pass (shape + line numbers); Ansible's resolution (groups, ranges,
precedence); then every check, collecting all problems before raising. Nothing here touches the network.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import InventoryError, Problem
from provisioner.inventory import host_checks, k3s_checks, kubeadm_checks
from provisioner.inventory import registries as registries_checks
from provisioner.inventory.ansible_source import (
    VAULTED,
    AnsibleParseError,
    ResolvedHost,
    ResolvedInventory,
    plain,
    resolve,
)
from provisioner.inventory.model import (
    DEFAULT_FLAVOR,
    DEFAULT_RELEASE_URL,
    FLAVORS,
    Cluster,
    Host,
    K3sSettings,
    KubeadmSettings,
    Role,
)
from provisioner.inventory.report import Report
from provisioner.inventory.syntax import (
    CLUSTER_NAME_RE,
    MAX_LABEL_LENGTH,
    host_address_problem,
    node_name_problem,
    suggest_node_name,
)
from provisioner.inventory.yamlfile import LineIndex, read_structure
from provisioner.plan import fault_tolerance, quorum

YAML_EXTENSIONS = ("", ".yml", ".yaml", ".json")  # what ansible-core's yaml inventory plugin accepts

# Settings of the whole cluster: every host must see the same value, so they belong in all.vars.
CLUSTER_VARS = (
    "provision_cluster_name",
    "provision_flavor",
    "provision_api_endpoint",
    "provision_accept_even_servers",
    "k3s_version",
    "k3s_channel",
    "k3s_release_url",
    "k3s_artifact_dir",
    "k3s_airgap_images",
    "k3s_airgap_images_format",
    "k3s_registries",
    "k3s_token",
    "k3s_datastore_endpoint",
    "k3s_datastore_password_file",
    "k3s_upgrade_image",
    *kubeadm_checks.CLUSTER_VARS,
)
HOST_VARS = ("provision_hardware", "k3s_node_labels", "k3s_node_taints", "k3s_server_config", "k3s_agent_config")
# Variables the roles accept (see playbooks/roles/*/meta/argument_specs.yml) that the model passes through as they are.
ROLE_TUNABLES = (
    "k3s_channel_url",
    "k3s_server_group",
    "k3s_agent_group",
    "k3s_api_endpoint",
    "k3s_api_port",
    "k3s_token_file",
    "k3s_install_dir",
    "k3s_config_dir",
    "k3s_data_dir",
    "k3s_systemd_dir",
    "k3s_start_timeout",
    "k3s_ready_timeout",
    "k3s_cluster_name",
    "k3s_kubeconfig_dest",
    "k3s_verify_exclude",
    "k3s_environment",
    "node_prep_kernel_modules",
    "node_prep_sysctls",
    "node_prep_packages",
    "node_prep_install_packages",
    "k3s_etcd_join_timeout",
    "keepalived_vip_address",
    "keepalived_vip_prefix",
    "keepalived_vip_interface",
    "keepalived_vip_router_id",
    "keepalived_vip_group",
    "keepalived_vip_check",
    "keepalived_vip_check_interval",
    "keepalived_vip_check_fall",
    "keepalived_vip_check_rise",
    "keepalived_vip_api_port",
    "keepalived_vip_k3s_tls_dir",
    "keepalived_vip_check_ca",
    "keepalived_vip_check_cert",
    "keepalived_vip_check_key",
    "keepalived_vip_check_server_name",
    "keepalived_vip_install_packages",
    "kube_vip_address",
    "kube_vip_interface",
    "kube_vip_image",
    "kube_vip_manifest_dir",
    "k3s_upgrade_max_unavailable",
    "k3s_upgrade_drain",
    "k3s_upgrade_drain_timeout",
    "k3s_upgrade_ready_timeout",
    "k3s_upgrade_staging_dir",
    "k3s_upgrade_enforce_checks",
    "k3s_upgrade_strategy",
    "k3s_backup_dir",
    "k3s_backup_name",
    "k3s_backup_restore_from",
    "k3s_backup_external_datastore",
    "k3s_remove_node",
    "kubeadm_bin_dir",
    "kubeadm_server_group",
    "kubeadm_agent_group",
    "kubeadm_api_endpoint",
    "kubeadm_api_port",
    "kubeadm_cluster_name",
    "kubeadm_kubeconfig_dest",
    "kubeadm_ready_timeout",
    "kubeadm_verify_exclude",
    "kubeadm_dns_domain",
    "kubeadm_upgrade_max_unavailable",
    "kubeadm_upgrade_drain",
    "kubeadm_upgrade_drain_timeout",
    "kubeadm_upgrade_enforce_checks",
    # Inputs the flavors' prepare playbooks give the shared node_prep role (their values win over the inventory's).
    "node_prep_flavor_product",
    "node_prep_flavor_file_stem",
    "node_prep_flavor_packages",
    "node_prep_flavor_swap_off",
)
KNOWN_VARS = frozenset(CLUSTER_VARS + HOST_VARS + ROLE_TUNABLES)
OWN_PREFIXES = ("provision_", "k3s_", "kubeadm_", "node_prep_")
# Variables an earlier release read, and their names now (node preparation became one role both flavors share).
RENAMED_VARS = {
    "k3s_prereq_kernel_modules": "node_prep_kernel_modules",
    "k3s_prereq_sysctls": "node_prep_sysctls",
    "k3s_prereq_packages": "node_prep_packages",
    "k3s_prereq_install_packages": "node_prep_install_packages",
}
# Each flavor's own variables; those of the other flavor in an inventory are refused (they would be ignored).
FLAVOR_PREFIXES = {"k3s": "k3s_", "kubeadm": "kubeadm_"}
#: Settings both flavors take in the same format under their own prefix (a K3s inventory moved to kubeadm keeps them).
SHARED_FORMAT = ("k3s_registries", "kubeadm_registries")
_MIN_ETCD_SERVERS = 2  # one server uses SQLite; from two on, servers share embedded etcd


def load_inventory(path: Path, flavor_override: str | None = None) -> Cluster:
    """Load and validate ``path``. Raises InventoryError with all problems; warnings land on Cluster.warnings."""
    label = str(path)
    text = _read(path, label)
    index = _structure(text, label)
    try:
        resolved = resolve(path)
    except AnsibleParseError as error:
        raise InventoryError(
            [Problem(label, "file", f"ansible-core cannot read it: {error}", "fix the YAML structure")]
        ) from None
    return _Builder(path, label, index, resolved, flavor_override).build()


def _read(path: Path, label: str) -> str:
    if not path.exists():
        raise InventoryError(
            [Problem(label, "file", "does not exist", "check the path (see docs/inventory.md for the format)")]
        )
    if path.is_dir():
        raise InventoryError([Problem(label, "file", "is a directory", "pass the inventory file itself")])
    if path.suffix not in YAML_EXTENSIONS:
        raise InventoryError(
            [
                Problem(
                    label,
                    "file",
                    f"Ansible reads YAML inventories only from .yml/.yaml files, not {path.suffix}",
                    "rename it to .yml",
                )
            ]
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InventoryError(
            [Problem(label, "file", f"cannot be read: {error}", "check permissions and encoding (UTF-8)")]
        ) from None


def _structure(text: str, label: str) -> LineIndex:
    try:
        index, problems = read_structure(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InventoryError(
            [Problem(label, "file", f"is not valid YAML: {reason}", "fix the YAML syntax", line=line)]
        ) from None
    if problems:
        raise InventoryError([Problem(label, p.field, p.message, p.fix, line=p.line) for p in problems])
    return index


class _Builder:
    """Runs every check over the resolved inventory and assembles the Cluster."""

    def __init__(
        self, path: Path, label: str, index: LineIndex, resolved: ResolvedInventory, flavor: str | None
    ) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.resolved = resolved
        self.flavor_override = flavor
        self.report = Report(label, index, {h.name: h.groups for h in resolved.hosts})
        self.by_name = {h.name: h for h in resolved.hosts}

    # -- orchestration -------------------------------------------------------------------------------------------

    def build(self) -> Cluster:
        roles = self.roles()
        ordered = [name for name in self.resolved.groups.get("server", ()) if roles.get(name) == "server"]
        ordered += [name for name in self.resolved.groups.get("agent", ()) if roles.get(name) == "agent"]
        reference = self.reference_vars(ordered)
        self.check_cluster_wide(ordered)
        self.warn_unknown_vars()
        name = self.cluster_name(reference.get("provision_cluster_name"))
        flavor = self.flavor(reference.get("provision_flavor"))
        hosts = tuple(self.host(self.by_name[n], roles[n]) for n in ordered)
        servers = [h for h in hosts if h.role == "server"]
        self.refuse_other_flavor_vars(flavor)
        settings: K3sSettings | KubeadmSettings
        if flavor == "kubeadm":
            settings = kubeadm_checks.read_settings(self.report, reference, hosts, self.base)
            external = settings.etcd is not None
        else:
            settings = self.k3s_settings(reference, servers, hosts)
            external = settings.datastore_endpoint not in (None, "")
        accept_even = host_checks.check_bool(
            self.report, None, "provision_accept_even_servers", reference.get("provision_accept_even_servers"), False
        )
        self.check_addresses(hosts)
        self.check_quorum(len(servers), external, accept_even, kubeadm=flavor == "kubeadm")
        # A managed VIP is the API endpoint unless provision_api_endpoint names another (an LB in front, say).
        endpoint = self.api_endpoint(
            reference.get("provision_api_endpoint")
            or reference.get("keepalived_vip_address")
            or reference.get("kube_vip_address"),
            servers,
        )
        if self.report.errors:
            raise InventoryError(self.report.sorted_errors(), self.report.sorted_warnings())
        return Cluster(
            name=str(name),
            flavor=flavor,
            source_file=self.path,
            api_endpoint=endpoint,
            settings=settings,
            hosts=hosts,
            accept_even_servers=accept_even,
            warnings=tuple(self.report.sorted_warnings()),
        )

    def reference_vars(self, ordered: list[str]) -> dict[str, Any]:
        """Cluster-wide values as the first server (else the first host) sees them; check_cluster_wide compares."""
        names = ordered or [h.name for h in self.resolved.hosts]
        if not names:
            return {}
        variables = self.by_name[names[0]].variables
        return {key: plain(variables[key]) for key in KNOWN_VARS if key in variables}

    # -- roles -------------------------------------------------------------------------------------------------

    def roles(self) -> dict[str, Role]:
        """Each host's role from its group: exactly one of server / agent."""
        servers = set(self.resolved.groups.get("server", ()))
        agents = set(self.resolved.groups.get("agent", ()))
        index = self.report.index
        if not servers:
            self.no_servers(bool(agents))
        roles: dict[str, Role] = {}
        for host in self.resolved.hosts:
            if host.name in servers and host.name in agents:
                line = index.host_group_lines.get((host.name, "agent"), index.host_lines.get(host.name))
                self.report.error(
                    "group",
                    "is in both the server and the agent group; a node runs either k3s server or k3s agent",
                    "keep it in one group (servers also run workloads unless tainted)",
                    host=host.name,
                    line=line,
                )
            elif host.name in servers:
                roles[host.name] = "server"
            elif host.name in agents:
                roles[host.name] = "agent"
            else:
                self.report.error(
                    "group",
                    "is in neither the server nor the agent group, so provision would not know what to install",
                    "put it under server or agent (children of those groups count), or remove it from this inventory",
                    host=host.name,
                    line=index.host_lines.get(host.name),
                )
        return roles

    def no_servers(self, have_agents: bool) -> None:
        line = self.report.index.group_lines.get("server")
        if "server" not in self.resolved.groups:
            message = "there is no server group"
        else:
            message = "the server group has no hosts"
        if have_agents:
            message += "; agents cannot form a cluster alone, they join a server"
        self.report.error(
            "server", message, "add a `server:` group under all.children with at least one host", line=line or None
        )

    # -- cluster-wide fields -----------------------------------------------------------------------------------

    def check_cluster_wide(self, ordered: list[str]) -> None:
        """A cluster-wide variable that differs between hosts is a mistake (e.g. a version set on one group)."""
        for field in CLUSTER_VARS:
            self._same_everywhere(ordered, field)
        servers = [n for n in ordered if "server" in self.by_name[n].groups]
        self._same_everywhere(servers, "k3s_server_config")

    def _same_everywhere(self, names: list[str], field: str) -> None:
        if not names:
            return
        first = names[0]
        expected = plain(self.by_name[first].variables.get(field))
        for name in names[1:]:
            if plain(self.by_name[name].variables.get(field)) != expected:
                self.report.error(
                    field,
                    f"differs between hosts {first} and {name}; it must be the same on every "
                    + ("server (critical k3s settings must match)" if field == "k3s_server_config" else "host"),
                    "set it once in all.vars" + (" or server.vars" if field == "k3s_server_config" else ""),
                    host=name,
                )

    def warn_unknown_vars(self) -> None:
        """A misspelt provision_/k3s_ variable is silently ignored by the playbooks; say so."""
        index = self.report.index
        known = sorted(KNOWN_VARS)
        entries = [(path, line) for (_owner, path), line in index.group_vars.items() if len(path) == 1]
        entries += [(path, line) for (_owner, path), line in index.host_vars.items() if len(path) == 1]
        for path, line in entries:
            name = str(path[0])
            if name in RENAMED_VARS:
                self.report.error(
                    name, f"was renamed to {RENAMED_VARS[name]} (it would be ignored)",
                    f"rename it to {RENAMED_VARS[name]}", line=line,
                )
            elif name.startswith(OWN_PREFIXES) and name not in KNOWN_VARS:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
                hint = f"did you mean {close[0]}? " if close else ""
                self.report.warn(
                    name, "is not a provision variable and will be ignored", f"{hint}see docs/inventory.md", line=line
                )

    def cluster_name(self, name: object) -> str:
        if name is None:
            self.report.error(
                "provision_cluster_name",
                "is missing",
                "add provision_cluster_name: <name> to all.vars (lower-case letters, digits and '-')",
                line=self.report.index.group_lines.get("all"),
            )
            return ""
        if not isinstance(name, str) or len(name) > MAX_LABEL_LENGTH or not CLUSTER_NAME_RE.match(name):
            suggestion = "".join(c if c.isalnum() else "-" for c in str(name).lower()).strip("-")[:MAX_LABEL_LENGTH]
            self.report.error(
                "provision_cluster_name",
                f"{name!r} is not a DNS-1123 label (it names the kubeconfig context and the state directory)",
                f"use lower-case letters, digits and '-', at most 63 characters, e.g. {suggestion or 'edge'}",
            )
        return str(name)

    def flavor(self, value: object) -> str:
        if self.flavor_override is not None:
            if self.flavor_override not in FLAVORS:
                self.report.error(
                    "--flavor", f"{self.flavor_override!r} is not a flavor", f"use one of {', '.join(FLAVORS)}"
                )
                return DEFAULT_FLAVOR
            return self.flavor_override
        if value is None:
            return DEFAULT_FLAVOR
        if value not in FLAVORS:
            close = difflib.get_close_matches(str(value), FLAVORS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            self.report.error(
                "provision_flavor", f"{value!r} is not a flavor", f"{hint}use one of {', '.join(FLAVORS)}"
            )
            return DEFAULT_FLAVOR
        return str(value)

    def api_endpoint(self, value: object, servers: list[Host]) -> str:
        if value is None:
            return servers[0].address if servers else ""
        reason = host_address_problem(value) if isinstance(value, str) else "must be a string"
        if isinstance(value, str) and "{{" in value:
            reason = None
        if reason:
            self.report.error(
                "provision_api_endpoint",
                f"{value!r} {reason}",
                "give the host name or IP address of the load balancer, VIP or first server (no scheme, no port)",
            )
        return str(value)

    # -- k3s -----------------------------------------------------------------------------------------------------

    def refuse_other_flavor_vars(self, flavor: str) -> None:
        """A kubeadm_* variable in a K3s inventory (or k3s_* in a kubeadm one) would be ignored: refuse it."""
        own = FLAVOR_PREFIXES.get(flavor, "")
        foreign = tuple(p for f, p in FLAVOR_PREFIXES.items() if f != flavor)
        index = self.report.index
        entries = [(path, line) for (_owner, path), line in index.group_vars.items() if len(path) == 1]
        entries += [(path, line) for (_owner, path), line in index.host_vars.items() if len(path) == 1]
        for path, line in sorted(entries, key=lambda entry: entry[1]):
            name = str(path[0])
            if name.startswith(foreign) and not name.startswith(own):
                other = next(f for f, p in FLAVOR_PREFIXES.items() if name.startswith(p))
                counterpart = own + name[len(FLAVOR_PREFIXES[other]):]
                same = f"rename it {counterpart} (the same setting for {flavor}), " * (counterpart in SHARED_FORMAT)
                self.report.error(
                    name,
                    f"is a {other} setting, but this inventory installs {flavor} (provision_flavor)",
                    f"{same}remove it, or set provision_flavor: {other} if this cluster is meant to run {other}",
                    line=line,
                )

    def k3s_settings(self, ref: Mapping[str, Any], servers: list[Host], hosts: tuple[Host, ...]) -> K3sSettings:
        report = self.report
        version, channel = ref.get("k3s_version"), ref.get("k3s_channel")
        url_given = "k3s_release_url" in ref and ref["k3s_release_url"] is not None
        release_url: str | None = DEFAULT_RELEASE_URL
        artifact_dir = None
        k3s_checks.check_version_and_channel(report, version, channel)
        k3s_checks.check_fixed_locations(report, ref)
        if url_given:
            release_url = k3s_checks.check_release_url(report, ref["k3s_release_url"])
        if ref.get("k3s_artifact_dir") is not None:
            if url_given:
                report.error(
                    "k3s_artifact_dir",
                    "k3s_artifact_dir and k3s_release_url are both set; the artifacts come from one place",
                    "keep k3s_artifact_dir for an air-gapped install, or k3s_release_url for a mirror",
                )
            artifact_dir = k3s_checks.check_artifact_dir(
                report, ref["k3s_artifact_dir"], self.base, version=version, channel=channel
            )
        registries = ref.get("k3s_registries")
        if registries is not None:
            registries_checks.check(report, "k3s_registries", registries, rewrite=True)
        server_config = self.server_config(ref, servers)
        agent_config = self.agent_configs(hosts)
        token = ref.get("k3s_token")
        self.check_token(token)
        password_file = k3s_checks.check_datastore(
            report, ref.get("k3s_datastore_endpoint"), ref.get("k3s_datastore_password_file"), len(servers), self.base
        )
        endpoint = ref.get("k3s_datastore_endpoint")
        upgrade_image = k3s_checks.check_upgrade_image(report, ref.get("k3s_upgrade_image"))
        airgap_images = k3s_checks.check_airgap_images(
            report,
            host_checks.check_bool(report, None, "k3s_airgap_images", ref.get("k3s_airgap_images"), False),
            ref.get("k3s_airgap_images_format"),
        )
        return K3sSettings(
            version=version if isinstance(version, str) else None,
            channel=channel if isinstance(channel, str) else None,
            release_url=release_url or DEFAULT_RELEASE_URL,
            artifact_dir=artifact_dir,
            registries=dict(registries) if isinstance(registries, Mapping) else None,
            server_config=server_config,
            agent_config=agent_config,
            token_given=token is not None,
            token_vaulted=token is VAULTED,
            datastore_endpoint=endpoint if isinstance(endpoint, str) else None,
            datastore_password_file=password_file,
            upgrade_image=upgrade_image,
            airgap_images=airgap_images,
        )

    def server_config(self, ref: Mapping[str, Any], servers: list[Host]) -> dict[str, object]:
        value = ref.get("k3s_server_config") if servers else None
        host = servers[0].name if servers else None
        k3s_checks.check_config(self.report, "k3s_server_config", value, "server", host=host)
        return dict(value) if isinstance(value, Mapping) else {}

    def agent_configs(self, hosts: tuple[Host, ...]) -> dict[str, object]:
        """Check each distinct agent config once (agents may differ by group); return the first agent's."""
        checked: list[object] = []
        agents = [h for h in hosts if h.role == "agent"]
        for agent in agents:
            value = plain(self.by_name[agent.name].variables.get("k3s_agent_config"))
            if value in checked:
                continue
            checked.append(value)
            k3s_checks.check_config(self.report, "k3s_agent_config", value, "agent", host=agent.name)
        return dict(agents[0].k3s_config) if agents else {}

    def check_token(self, token: object) -> None:
        """A token in the inventory must be a string; in plain text it is allowed but warned about. Never shown."""
        if token is None or token is VAULTED:
            return
        if not isinstance(token, str) or not token.strip():
            self.report.error(
                "k3s_token",
                "must be a non-empty string (value not shown)",
                "quote it, or remove it to have one generated",
            )
            return
        if "{{" in token:
            return
        self.report.warn(
            "k3s_token",
            "is stored in plain text in the inventory (value not shown)",
            "encrypt it with `ansible-vault encrypt_string`, or pass it via PROVISION_K3S_TOKEN or --token-file",
        )

    def check_quorum(self, servers: int, external: bool, accept_even: bool, kubeadm: bool) -> None:
        """etcd needs a majority: 2 servers tolerate no failure (like 1), 4 tolerate one (like 3)."""
        if servers < _MIN_ETCD_SERVERS or servers % 2 or external:
            return
        unit, etcd = ("control-plane node", "stacked etcd") if kubeadm else ("server", "embedded etcd")
        alternative = "use kubeadm_etcd: external" if kubeadm else "use k3s_datastore_endpoint"
        majority = quorum(servers)
        tolerated = fault_tolerance(servers)
        plural = "s" if tolerated > 1 else ""
        survives = f"no {unit} failure" if tolerated == 0 else f"{tolerated} {unit} failure{plural}"
        like = f"a single {unit}" if servers == _MIN_ETCD_SERVERS else f"{servers - 1} {unit}s"
        message = (
            f"{servers} {unit}s with {etcd}: etcd needs a majority ({majority} of {servers}) to work, so the "
            f"cluster survives {survives}, like {like}, with one more machine that can fail"
        )
        line = self.report.index.group_lines.get("server")
        if accept_even:
            self.report.warn("server", message, "accepted because provision_accept_even_servers is true", line=line)
            return
        self.report.error(
            "server",
            message,
            f"use an odd number of {unit}s ({servers - 1} or {servers + 1}), {alternative}, "
            "or set provision_accept_even_servers: true in all.vars if this is deliberate",
            line=line,
        )

    # -- hosts ---------------------------------------------------------------------------------------------------

    def host(self, resolved: ResolvedHost, role: Role) -> Host:
        report, name = self.report, resolved.name
        variables = {key: plain(value) for key, value in resolved.variables.items() if not _magic(key)}
        address = host_checks.text_or_none(report, name, "ansible_host", variables.get("ansible_host")) or name
        common = host_checks.text_or_none(
            report, name, "ansible_ssh_common_args", variables.get("ansible_ssh_common_args")
        )
        extra = host_checks.text_or_none(
            report, name, "ansible_ssh_extra_args", variables.get("ansible_ssh_extra_args")
        )
        user = host_checks.text_or_none(
            report, name, "ansible_user", variables.get("ansible_user", variables.get("ansible_ssh_user"))
        )
        key_var = (
            "ansible_ssh_private_key_file"
            if "ansible_ssh_private_key_file" in variables
            else "ansible_private_key_file"
        )
        key = host_checks.text_or_none(report, name, key_var, variables.get(key_var))
        checking_var = next(
            (v for v in ("ansible_ssh_host_key_checking", "ansible_host_key_checking") if v in variables),
            "ansible_host_key_checking",
        )
        checking = host_checks.check_bool(report, name, checking_var, variables.get(checking_var), True)
        strict_off = host_checks.strict_checking_off(common, extra)
        if not checking or strict_off:
            report.warn(
                checking_var if not checking else "ansible_ssh_common_args",
                "host key checking is off: SSH will trust any machine answering at this address",
                "add the host's key to a known_hosts file (ssh-keyscan) and turn checking back on",
                host=name,
            )
        self.check_node_name(name)
        config_field = "k3s_server_config" if role == "server" else "k3s_agent_config"
        config = variables.get(config_field)
        return Host(
            name=name,
            address=address,
            port=host_checks.check_port(report, name, variables),
            user=user,
            role=role,
            hardware=host_checks.check_hardware(report, name, variables.get("provision_hardware")),
            node_labels=host_checks.check_labels(report, name, variables.get("k3s_node_labels")),
            node_taints=host_checks.check_taints(report, name, variables.get("k3s_node_taints")),
            k3s_config=dict(config) if isinstance(config, Mapping) else {},
            ssh_key=Path(key).expanduser() if key else None,
            become=host_checks.check_bool(report, name, "ansible_become", variables.get("ansible_become"), False),
            ssh_common_args=common,
            ssh_extra_args=extra,
            known_hosts_file=host_checks.known_hosts_file(common, extra),
            host_key_checking=checking and not strict_off,
            port_given=host_checks.port_given(variables),
        )

    def check_node_name(self, name: str) -> None:
        """The inventory host name becomes the Kubernetes node name, which must be a DNS-1123 subdomain."""
        problem = node_name_problem(name)
        if problem is None:
            return
        self.report.error(
            "host name",
            f"{name!r} cannot be a Kubernetes node name (provision names each node after its inventory host): "
            f"node names {problem}",
            f"rename the inventory host to {suggest_node_name(name)!r} and keep the address in ansible_host",
            host=name,
            line=self.report.index.host_lines.get(name),
        )

    def check_addresses(self, hosts: tuple[Host, ...]) -> None:
        """Two inventory hosts reaching the same SSH endpoint would be installed twice as different nodes."""
        seen: dict[tuple[str, int], str] = {}
        for host in hosts:
            key = (host.address.lower(), host.port)
            if "{{" in host.address:
                continue
            if key in seen:
                self.report.error(
                    "ansible_host",
                    f"{host.address}:{host.port} is also the address of {seen[key]}; both would be the same machine",
                    "give each host its own ansible_host (or ansible_port)",
                    host=host.name,
                    line=self.report.origin(("ansible_host",), host.name).line
                    or self.report.index.host_lines.get(host.name),
                )
            else:
                seen[key] = host.name


def _magic(name: str) -> bool:
    """Variables Ansible adds itself (inventory_hostname, groups, ...), not written by the user."""
    return name in ("groups", "group_names", "hostvars", "omit", "ansible_facts", "ansible_version", "playbook_dir")


def to_ansible_vars(cluster: Cluster) -> dict[str, object]:
    """Extra vars the CLI passes to every playbook: resolved values that remove any doubt, never secrets.

    The playbooks compute the same defaults from the inventory when run by hand; passing them makes the CLI's
    decisions (flavor override, endpoint default, paths resolved against the inventory file) authoritative.
    """
    extra: dict[str, object] = {
        "provision_cluster_name": cluster.name,
        "provision_flavor": cluster.flavor,
        "provision_api_endpoint": cluster.api_endpoint,
    }
    settings = cluster.settings
    if isinstance(settings, KubeadmSettings):
        if settings.artifact_dir is not None:
            extra["kubeadm_artifact_dir"] = str(settings.artifact_dir)
        return extra
    if settings.artifact_dir is not None:
        extra["k3s_artifact_dir"] = str(settings.artifact_dir)
    if settings.datastore_password_file is not None:
        extra["k3s_datastore_password_file"] = str(settings.datastore_password_file)
    return extra
