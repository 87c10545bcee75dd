"""Secrets exported for provision (PROVISION_K3S_TOKEN, PROVISION_DATASTORE_PASSWORD) never reach ansible-runner's
artifacts (which record the whole process environment), reports or output, whatever the command: they are moved into
0600 files before anything runs. Each command here fails early against a closed port on loopback, after its
ansible-runner run wrote its artifacts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

pytestmark = pytest.mark.unit

TOKEN = 'K10tok/en+"with spaces"=and\\slashes'  # noqa: S105 - a test value, chosen to differ in every encoding
PASSWORD = "pa ss/w+ord=%41\"'"  # noqa: S105

INVENTORY = """
all:
  vars:
    provision_cluster_name: leakcheck
    k3s_version: v1.28.4+k3s2
    ansible_port: 1
  children:
    server:
      hosts:
        s1: {ansible_host: 127.0.0.1}
"""


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
    inventory = tmp_path / "edge.yml"
    inventory.write_text(INVENTORY)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    state = tmp_path / "state"
    env = os.environ | {"PROVISION_K3S_TOKEN": TOKEN, "PROVISION_DATASTORE_PASSWORD": PASSWORD,
                        "PROVISION_STATE_DIR": str(state), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    result = subprocess.run(
        [sys.executable, "-m", "provisioner.cli.main", *command, "--inventory", str(inventory),
         "--known-hosts", str(known_hosts), "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode != 0, result.stdout + result.stderr  # nothing listens on port 1
    secrets = {"token": TOKEN, "password": PASSWORD}
    assert leaks((result.stdout + result.stderr).encode(), secrets) == []
    artifacts = list((state / "leakcheck" / "runner" / "artifacts").rglob("*"))
    assert any(p.name == "command" for p in artifacts), "the command ran no playbook; the check proves nothing"
    found = {str(p.relative_to(state)): leaks(p.read_bytes(), secrets) for p in state.rglob("*")
             if p.is_file() and p.parent.name != "secrets"}
    assert {k: v for k, v in found.items() if v} == {}
    # The 0600 copies live as long as the command: none is left behind.
    assert list((state / "leakcheck" / "secrets").glob("*")) == []
