"""``k3s agent``: validate the join token, fetch agent config, register the node, heartbeat.

Like k3s, a token whose CA hash does not match, an unreachable server or a rejected
password never makes the agent exit: it logs k3s's message and retries, and systemd
keeps the unit in ``activating`` because READY=1 is only sent after registration.
"""

from __future__ import annotations

import signal
import threading

from . import _buildinfo, host, hostnet, images, log, nodeinfo
from . import token as tokens
from .config import Settings, UsageError, parse
from .joinclient import JoinError, fetch_json, validate_server
from .server import print_help, read_token_file, usage_fatal

HEARTBEAT_SECONDS = 5.0


class AgentRun:
    """State of one ``k3s agent`` process."""

    def __init__(self, settings: Settings, server_url: str, info: tokens.TokenInfo) -> None:
        self.settings = settings
        self.server_url = server_url.rstrip("/")
        self.info = info
        self.stop = threading.Event()
        self.data_dir = settings.data_dir
        self.node_name = nodeinfo.node_name(settings, self.data_dir)
        self.servers: list[str] = [self.server_url]
        self.bundle = b""

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise SystemExit(0)

    def validate(self) -> None:
        while True:
            try:
                self.bundle = validate_server(self.server_url, self.info.ca_hash)
                agent_dir = self.data_dir / "agent"
                agent_dir.mkdir(parents=True, exist_ok=True)
                (agent_dir / "server-ca.crt").write_bytes(self.bundle)
                return
            except JoinError as exc:
                log.error(f"Failed to validate connection to cluster at {self.server_url}: {exc}")
                self._wait(2)

    def _call(self, path: str, method: str = "GET", body: object = None,
              extra_headers: dict[str, str] | None = None) -> object:
        """Try the configured server first, then other servers the cluster told us about."""
        first: JoinError | None = None
        for url in [self.server_url, *[u for u in self.servers if u != self.server_url]]:
            try:
                return fetch_json(url, path, "node", self.info.password, method=method, body=body,
                                  bundle=self.bundle, extra_headers=extra_headers)
            except JoinError as exc:
                first = first or exc
                if any(f" {code} " in f" {exc} " for code in (401, 403, 404)):
                    break
        assert first is not None
        raise first

    def fetch_config(self) -> None:
        while True:
            try:
                config = self._call("/v1-k3s/config")
                if isinstance(config, dict):
                    self.servers = [str(u) for u in config.get("servers", [])] or self.servers
                return
            except JoinError as exc:
                log.info(f"Waiting to retrieve agent configuration; server is not ready: "
                         f"failed to retrieve configuration from server: {exc}")
                self._wait(5)

    def register(self) -> None:
        node = nodeinfo.build_node(self.settings, self.node_name, role_labels={})
        identity = {"K3s-Node-Name": self.node_name, "K3s-Node-Password": nodeinfo.node_password(self.data_dir)}
        while True:
            try:
                self._call("/v1-k3s/standin/register", "POST", node, extra_headers=identity)
                return
            except JoinError as exc:
                if " 403 " in f" {exc} ":
                    rejected = nodeinfo.PASSWORD_REJECTED.format(file=nodeinfo.node_password_file(self.data_dir))
                    log.info(f"Waiting to retrieve agent configuration; server is not ready: {rejected}")
                else:
                    log.info(f"Waiting for node {self.node_name} to be registered: {exc}")
                self._wait(5)

    def heartbeat(self) -> None:
        failing = False
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                reply = self._call(f"/v1-k3s/standin/heartbeat/{self.node_name}", "PUT", {})
                if isinstance(reply, dict) and reply.get("servers"):
                    self.servers = [str(u) for u in reply["servers"]]
                if failing:
                    log.info(f"Connection to server restored; node {self.node_name} status updated")
                failing = False
            except JoinError as exc:
                if "404" in str(exc):
                    log.info(f"Node {self.node_name} not found on the server; registering again")
                    try:
                        self.register()
                    except SystemExit:
                        return
                    continue
                if not failing:
                    log.error(f"Failed to update node {self.node_name} status: {exc}")
                failing = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        log.info(f"Starting k3s agent {_buildinfo.VERSION} ({_buildinfo.COMMIT})")
        try:
            self.validate()
            images.preload(self.data_dir)
            self.fetch_config()
            self.register()
        except SystemExit:
            log.info("Received SIGTERM, shutting down")
            return 0
        log.info(f"Node {self.node_name} registered with server {self.server_url}")
        host.sd_notify("READY=1\n")
        log.info("k3s agent is up and running")
        hostnet.apply(self.data_dir, self.node_name, nodeinfo.node_ips(self.settings)[0])
        self.heartbeat()
        log.info("Received SIGTERM, shutting down")
        return 0


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        return print_help("agent")
    try:
        settings = parse("agent", argv)
    except UsageError as exc:
        return usage_fatal("agent", exc)
    log.set_debug(settings.flag("debug"))
    server_url = settings.text("server")
    if not server_url:
        log.fatal("--server is required")
    token_text = read_token_file(settings.text("token-file")) if settings.text("token-file") else settings.text("token")
    if not token_text:
        log.fatal("--token is required")
    try:
        info = tokens.parse(token_text)
    except tokens.TokenError as exc:
        log.fatal(str(exc))
    return AgentRun(settings, server_url, info).run()
