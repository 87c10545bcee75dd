"""ansible-runner events become typed host outcomes; host-key checking is on unless turned off."""

from pathlib import Path

import pytest

from provisioner.cli.output import TextReporter
from provisioner.runner import HostEvent, HostOutcome, Runner
from provisioner.ssh_config import SshSettings

pytestmark = pytest.mark.unit


def _event(name: str, host: str, task: str, **res: object) -> dict:
    return {"event": name, "event_data": {"host": host, "task": task, "res": res, "duration": 1.5}}


def test_events_become_outcomes() -> None:
    seen: list[HostEvent] = []
    runner = Runner(Path("/nonexistent"), SshSettings(), on_event=seen.append)
    hosts: dict[str, HostOutcome] = {}
    for event in [
        _event("runner_on_ok", "s1", "Write config.yaml", changed=True),
        _event("runner_on_ok", "s1", "Read token", changed=False),
        _event("runner_on_failed", "a1", "Start", msg="service failed"),
        _event("runner_on_unreachable", "a2", "Gathering Facts", msg="ssh: connect to host a2 port 22: No route"),
        _event("runner_on_failed", "a1", "Secret task", censored="the output has been hidden"),
    ]:
        runner._record(event, hosts)
    assert hosts["s1"].changed == 1 and hosts["s1"].ok == 2 and hosts["s1"].changed_tasks == ["Write config.yaml"]
    assert hosts["s1"].duration_s == 3.0
    assert hosts["a1"].failed and "hidden" in hosts["a1"].reason
    assert hosts["a2"].unreachable and "No route" in hosts["a2"].reason
    assert [e.state for e in seen] == ["changed", "ok", "failed", "unreachable", "failed"]


def test_ignored_failures_do_not_fail_the_host() -> None:
    runner = Runner(Path("/nonexistent"), SshSettings())
    hosts: dict[str, HostOutcome] = {}
    event = _event("runner_on_failed", "s1", "Optional", msg="nope")
    event["event_data"]["ignore_errors"] = True
    runner._record(event, hosts)
    assert not hosts["s1"].failed


def test_a_failed_loop_reports_its_first_failed_item() -> None:
    runner = Runner(Path("/nonexistent"), SshSettings())
    hosts: dict[str, HostOutcome] = {}
    items = [{"failed": False, "msg": "All assertions passed"}, {"failed": True, "msg": "k3s-airgap.tar.zst: bad sum"}]
    runner._record(_event("runner_on_failed", "s1", "Compare", msg="One or more items failed", results=items), hosts)
    secret = [{"failed": True, "censored": "the output has been hidden"}]
    runner._record(_event("runner_on_failed", "a1", "Secret loop", msg="One or more items failed", results=secret), hosts)
    assert hosts["s1"].reason.endswith("k3s-airgap.tar.zst: bad sum")
    assert "hidden" in hosts["a1"].reason and "One or more" not in hosts["a1"].reason


def test_host_key_checking_is_on_by_default() -> None:
    env = SshSettings(known_hosts=Path("/k")).envvars()
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "UserKnownHostsFile=/k" in env["ANSIBLE_SSH_ARGS"]
    assert "StrictHostKeyChecking=no" not in env["ANSIBLE_SSH_ARGS"]
    off = SshSettings(strict_host_key_checking=False).envvars()
    assert off["ANSIBLE_HOST_KEY_CHECKING"] == "False"


def test_show_tasks_become_notes_the_user_sees(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = TextReporter()
    runner = Runner(Path("/nonexistent"), SshSettings(), on_event=reporter.host_event)
    hosts: dict[str, HostOutcome] = {}
    note = "/etc/rancher/k3s/config.yaml: node-label: (unset) -> [tier=edge]"
    runner._record(_event("runner_on_ok", "a1", "k3s : Show what changes in config.yaml", msg=note), hosts)
    runner._record(_event("runner_on_ok", "a1", "Read the node", msg="not a note"), hosts)
    assert hosts["a1"].notes == [note] and hosts["a1"].changed == 0
    assert note in capsys.readouterr().err
