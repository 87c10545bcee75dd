"""Client side of joining: fetch and check the cluster CA, then talk to the supervisor.

Follows k3s's clientaccess: download ``/cacerts`` without verification, check that the
bundle really verifies the server's certificate for the address used, then compare its
sha256 with the hash in the token (skipped, with a warning, for a short token).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import log, token

_BUNDLES: dict[str, bytes] = {}
TIMEOUT = 10.0


class JoinError(Exception):
    """Validation or transport failure; str() follows k3s/Go wording."""


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise JoinError(f"only https:// URLs are supported, invalid scheme: {url}")
    return f"{parts.scheme}://{parts.netloc}"


def _describe(exc: BaseException, full: str) -> str:
    parts = urllib.parse.urlsplit(full)
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return f'Get "{full}": dial tcp {parts.netloc}: connect: connection refused'
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f'Get "{full}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f'Get "{full}": tls: failed to verify certificate: {reason.verify_message}'
    if isinstance(reason, OSError) and reason.strerror:
        return f'Get "{full}": dial tcp {parts.netloc}: {reason.strerror.lower()}'
    return f'Get "{full}": {reason}'


def _get(full: str, context: ssl.SSLContext, headers: dict[str, str] | None = None, method: str = "GET",
         body: bytes | None = None) -> bytes:
    req = urllib.request.Request(full, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=context, timeout=TIMEOUT) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        raise JoinError(f"{full}: {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise JoinError(_describe(exc, full)) from exc


def _insecure() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _trusting(bundle: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=bundle.decode())
    return ctx


def validate_server(url: str, ca_hash: str) -> bytes:
    """Fetch the CA bundle, prove it signs the server cert, compare its hash with the token's."""
    origin = _origin(url)
    full = origin + "/cacerts"
    try:
        bundle = _get(full, _insecure())
    except JoinError as exc:
        raise JoinError(f"failed to get CA certs: {exc}") from exc
    try:
        _get(full, _trusting(bundle))
    except (JoinError, ssl.SSLError, ValueError) as exc:
        raise JoinError(f"CA cert validation failed: {exc}") from exc
    actual = token.bundle_hash(bundle)
    if not ca_hash:
        log.warn("Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a "
                 "CA hash. Use the full token from the server's node-token file to enable Cluster CA validation.")
    elif ca_hash != actual:
        raise JoinError(f"token CA hash does not match the Cluster CA certificate hash: {ca_hash} != {actual}")
    _BUNDLES[origin] = bundle
    return bundle


def request(url: str, path: str, user: str, password: str, *, method: str = "GET",
            body: Any = None, bundle: bytes | None = None, extra_headers: dict[str, str] | None = None) -> bytes:
    """Authenticated request to a supervisor path, verified with the cluster CA."""
    origin = _origin(url)
    bundle = bundle or _BUNDLES.get(origin)
    if bundle is None:
        bundle = validate_server(url, "")
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", **(extra_headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return _get(origin + path, _trusting(bundle), headers, method, data)


def fetch_json(url: str, path: str, user: str, password: str, *, method: str = "GET", body: Any = None,
               bundle: bytes | None = None, extra_headers: dict[str, str] | None = None) -> Any:
    return json.loads(request(url, path, user, password, method=method, body=body, bundle=bundle,
                              extra_headers=extra_headers) or b"null")
