"""etcd cluster membership through etcd's v3 JSON gateway (what kubeadm does with its etcd client).

Real etcd (Debian's 3.4) answers: ``/v3/cluster/member/{list,add,promote,remove}`` and ``/health`` on the client
URLs, with TLS client certificates signed by the etcd CA. kubeadm's client uses ``apiserver-etcd-client``; the
reset path here uses the node's ``etcd/healthcheck-client`` against its local member. Gateway errors come back as
``{"code": <grpc code>, "message": ...}`` and are turned into the gRPC text the Go client prints.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

Json = dict[str, Any]
LOCAL = "https://127.0.0.1:2379"
GRPC_CODES = {1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
              6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition",
              10: "Aborted", 11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable",
              15: "DataLoss", 16: "Unauthenticated"}
CLIENTS = {"healthcheck": ("etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"),
           "apiserver": ("apiserver-etcd-client.crt", "apiserver-etcd-client.key")}


class EtcdError(Exception):
    """An etcd API failure; str() is the Go client's text (``rpc error: code = ... desc = ...``)."""


def _context(pki_dir: Path, client: str) -> ssl.SSLContext:
    cert, key = CLIENTS[client]
    ctx = ssl.create_default_context(cafile=str(pki_dir / "etcd" / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / cert), str(pki_dir / key))
    return ctx


def _call(pki_dir: Path, path: str, body: Json, endpoint: str = LOCAL, client: str = "healthcheck",
          timeout: float = 10.0) -> Any:
    req = urllib.request.Request(endpoint + "/v3" + path, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=_context(pki_dir, client), timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read() or b"{}")
        except ValueError:
            answer = {}
        code = GRPC_CODES.get(int(answer.get("code") or 2), "Unknown")
        raise EtcdError(f"rpc error: code = {code} desc = {answer.get('message') or exc.reason}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise EtcdError("context deadline exceeded") from exc


def members(pki_dir: Path, endpoint: str = LOCAL, client: str = "healthcheck") -> list[Json]:
    return list(_call(pki_dir, "/cluster/member/list", {}, endpoint, client).get("members") or [])


def add_member(pki_dir: Path, endpoint: str, peer_url: str, learner: bool) -> tuple[Json, list[Json]]:
    """MemberAdd (as a learner when ``learner``): the new member and the member list after the add."""
    answer = _call(pki_dir, "/cluster/member/add", {"peerURLs": [peer_url], "isLearner": learner}, endpoint,
                   "apiserver")
    return dict(answer.get("member") or {}), list(answer.get("members") or [])


def promote(pki_dir: Path, endpoint: str, member_id: str) -> None:
    _call(pki_dir, "/cluster/member/promote", {"ID": member_id}, endpoint, "apiserver")


def remove(pki_dir: Path, endpoint: str, member_id: str, client: str = "apiserver") -> None:
    _call(pki_dir, "/cluster/member/remove", {"ID": member_id}, endpoint, client)


def healthy(pki_dir: Path, endpoint: str, client: str = "apiserver", timeout: float = 5.0) -> bool:
    """etcd's ``/health`` (a quorum read): true only while the member serves with a leader."""
    req = urllib.request.Request(endpoint + "/health", method="GET")  # noqa: S310 - https only
    try:
        with urllib.request.urlopen(req, context=_context(pki_dir, client), timeout=timeout) as resp:  # noqa: S310
            return bool(json.loads(resp.read() or b"{}").get("health") in ("true", True))
    except (OSError, ssl.SSLError, ValueError):
        return False


def first_answering(pki_dir: Path, endpoints: list[str], deadline: float) -> tuple[str, list[Json]]:
    """The first endpoint whose member list answers (retried until ``deadline``, a monotonic time)."""
    last = EtcdError("context deadline exceeded")
    while True:
        for endpoint in endpoints:
            try:
                return endpoint, members(pki_dir, endpoint, "apiserver")
            except EtcdError as exc:
                last = exc
        if time.monotonic() > deadline:
            raise last
        time.sleep(1)


def remove_self(pki_dir: Path, name: str, timeout: float = 60.0) -> str | None:
    """Remove this node's member unless it is the last one; the problem text, or None. Retried like kubeadm's etcd
    client calls: etcd refuses a removal with ``etcdserver: unhealthy cluster`` while the remaining members have not
    been connected for its health interval (5 s), e.g. just after this host came back."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = members(pki_dir)
            mine = [m for m in found if m.get("name") == name]
            if not mine or len(found) == 1:
                return None
            remove(pki_dir, LOCAL, str(mine[0]["ID"]), "healthcheck")
            return None
        except (EtcdError, KeyError) as exc:
            if time.monotonic() > deadline:
                return str(exc)
        time.sleep(1)
