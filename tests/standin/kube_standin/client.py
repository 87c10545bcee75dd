"""A small REST client for the stand-in tools: client certificate, bearer token or anonymous, CA-verified."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import pki

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(self, code: int, body: Any, text: str = "") -> None:
        self.code = code
        self.body = body if isinstance(body, dict) else {}
        super().__init__(text or str(self.body.get("message") or body))


class Api:
    def __init__(self, server: str, ca_pem: bytes | None, cert_pem: bytes = b"", key_pem: bytes = b"",
                 token: str = "", timeout: float = 10.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_pem:
            ctx.load_verify_locations(cadata=ca_pem.decode())
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert_pem:
            with tempfile.TemporaryDirectory(prefix="kube-standin-") as tmp:
                cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, key_pem)
                os.close(fd)
                cert.write_bytes(cert_pem)
                ctx.load_cert_chain(str(cert), str(key))
        self.context = ctx

    @classmethod
    def from_kubeconfig(cls, path: Path, timeout: float = 10.0) -> Api:
        kc = pki.read_kubeconfig(path)
        return cls(kc["server"], kc["ca"] or None, kc.get("cert", b""), kc.get("key", b""), kc.get("token", ""),
                   timeout)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> Any:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Accept": "application/json", "Content-Type": content_type})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed: Any = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ApiError(exc.code, parsed) from exc
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def create_or_update(self, path: str, obj: Json) -> Json:
        """POST to the collection; on AlreadyExists PUT over the object (kubeadm's CreateOrUpdate helpers)."""
        name = obj["metadata"]["name"]
        try:
            return dict(self.request("POST", path, obj))
        except ApiError as exc:
            if exc.code != 409:
                raise
        return dict(self.request("PUT", f"{path}/{name}", obj))
