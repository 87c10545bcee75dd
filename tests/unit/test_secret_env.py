"""Secrets exported for provision (PROVISION_K3S_TOKEN, PROVISION_DATASTORE_PASSWORD) never reach ansible-runner's
artifacts (which record the whole process environment), reports or output, whatever the command: they are moved into
0600 files before anything runs. Each command here fails early against a closed port on loopback, after its
ansible-runner run wrote its artifacts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.unit.cli_runs import loopback_inventory, run

pytestmark = pytest.mark.unit

TOKEN = 'K10tok/en+"with spaces"=and\\slashes'  # noqa: S105 - a test value, chosen to differ in every encoding
PASSWORD = "pa ss/w+ord=%41\"'"  # noqa: S105
SUDO = "sudo;pass word$(x)'"  # noqa: S105 - sudo's password (become)



def leak_forms(secret: str) -> dict[str, bytes]:
    """The secret as it would appear written raw, JSON-escaped, URL-encoded or base64-encoded at any offset."""
    raw = secret.encode()
    forms = {"raw": raw, "json": json.dumps(secret)[1:-1].encode(), "url": quote(secret, safe="").encode(),
             "url-path": quote(secret).encode(), "url-form": quote_plus(secret).encode()}
    for offset in range(3):
        encoded = base64.b64encode(b"x" * offset + raw)
        # drop the characters that mix the prefix or the padding in; what remains is there at any offset
        forms[f"base64+{offset}"] = encoded[(offset * 4 + 2) // 3 + 1 : -4]
    return forms


def leaks(data: bytes, secrets: dict[str, str]) -> list[str]:
    return [f"{name} ({form})" for name, secret in secrets.items() for form, text in leak_forms(secret).items()
            if text and text in data]


def test_leak_forms_find_a_secret_in_every_encoding() -> None:
    text = f"x{TOKEN}y"
    for blob in (text.encode(), json.dumps(text).encode(), quote(text).encode(),
                 *(base64.b64encode(b"ab"[:n] + text.encode()) for n in range(3))):
        assert leaks(blob, {"token": TOKEN}), blob
    assert leaks(b"nothing here", {"token": TOKEN}) == []


@pytest.mark.parametrize("command", [["status"], ["backup"], ["reset", "--yes"], ["up"]])
def test_exported_secrets_stay_out_of_artifacts_reports_and_output(tmp_path: Path, command: list[str]) -> None:
    loopback_inventory(tmp_path, "leakcheck")
    state = tmp_path / "state"
    result = run(tmp_path, *command, "--json",
                 env={"PROVISION_K3S_TOKEN": TOKEN, "PROVISION_DATASTORE_PASSWORD": PASSWORD,
                      "PROVISION_BECOME_PASSWORD": SUDO})
    assert result.returncode != 0, result.stdout + result.stderr  # nothing listens on port 1
    secrets = {"token": TOKEN, "password": PASSWORD, "sudo": SUDO}
    assert leaks((result.stdout + result.stderr).encode(), secrets) == []
    artifacts = list((state / "leakcheck" / "runner" / "artifacts").rglob("*"))
    assert any(p.name == "command" for p in artifacts), "the command ran no playbook; the check proves nothing"
    found = {str(p.relative_to(state)): leaks(p.read_bytes(), secrets) for p in state.rglob("*")
             if p.is_file() and p.parent.name != "secrets"}
    assert {k: v for k, v in found.items() if v} == {}
    # The 0600 copies live as long as the command: none is left behind.
    assert list((state / "leakcheck" / "secrets").glob("*")) == []


def test_the_become_password_reaches_ansible_as_a_file_lookup_only(tmp_path: Path) -> None:
    loopback_inventory(tmp_path, "become")
    result = run(tmp_path, "status", "--json", env={"PROVISION_BECOME_PASSWORD": SUDO})
    assert result.returncode != 0
    # ansible-runner's record of the command line (the extra vars travel there): the lookup, not the password
    command = next((tmp_path / "state" / "become" / "runner").rglob("command")).read_text()
    assert "ansible_become_password" in command and "lookup('ansible.builtin.file', " in command
    assert "become-password" in command and leaks(command.encode(), {"sudo": SUDO}) == []


def test_ask_become_pass_without_a_terminal_is_refused_before_anything_runs(tmp_path: Path) -> None:
    loopback_inventory(tmp_path, "asked")
    result = run(tmp_path, "up", "--json", "--ask-become-pass")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--ask-become-pass needs a terminal" in result.stdout + result.stderr
    assert not list((tmp_path / "state" / "asked" / "runner").rglob("command"))
