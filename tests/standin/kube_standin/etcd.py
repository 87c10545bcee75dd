"""etcd cluster membership through the v3 JSON gateway (what kubeadm does with its etcd client)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any


def _call(pki_dir: Path, path: str, body: dict[str, Any], endpoint: str = "https://127.0.0.1:2379") -> Any:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "etcd" / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "etcd" / "healthcheck-client.crt"), str(pki_dir / "etcd" / "healthcheck-client.key"))
    req = urllib.request.Request(endpoint + "/v3" + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read() or b"{}")


def members(pki_dir: Path, endpoint: str = "https://127.0.0.1:2379") -> list[dict[str, Any]]:
    return list(_call(pki_dir, "/cluster/member/list", {}, endpoint).get("members") or [])


def remove_self(pki_dir: Path, name: str) -> str | None:
    """Remove this node's member unless it is the last one; the problem text, or None."""
    try:
        found = members(pki_dir)
        mine = [m for m in found if m.get("name") == name]
        if not mine or len(found) == 1:
            return None
        _call(pki_dir, "/cluster/member/remove", {"ID": mine[0]["ID"]})
    except (OSError, ValueError, KeyError, ssl.SSLError) as exc:
        return str(exc)
    return None
