"""K3s join tokens and the token-encrypted bootstrap blob.

Token grammar (k3s pkg/clientaccess): ``K10<sha256 of the CA bundle>::<user>:<password>``,
or a bare password. The hash is empty or 64 hex characters. The bootstrap blob (CA
material shared through the datastore) is encrypted with a key derived from the
password, so a server holding a different token cannot read it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "K10"
HASH_LEN = 64


class TokenError(Exception):
    """Malformed token; str() is k3s's wording."""


@dataclass(frozen=True)
class TokenInfo:
    """A parsed token; ``ca_hash`` is empty for a bare password."""

    ca_hash: str
    username: str
    password: str


def parse(token: str) -> TokenInfo:
    """Parse a token the way k3s does (bare password becomes an empty-hash token)."""
    if not token:
        raise TokenError("token must not be empty")
    text = token if token.startswith(PREFIX) else PREFIX + ":::" + token
    text = text[len(PREFIX):]
    ca_hash, sep, creds = text.partition("::")
    if not sep:
        creds, ca_hash = ca_hash, ""
    if ca_hash and len(ca_hash) != HASH_LEN:
        raise TokenError("invalid token CA hash length")
    user, colon, password = creds.partition(":")
    if not colon or not password:
        raise TokenError("invalid token format")
    return TokenInfo(ca_hash=ca_hash, username=user, password=password)


def format_token(ca_bundle: bytes, username: str, password: str) -> str:
    """Full K10 token for a CA bundle."""
    return f"{PREFIX}{hashlib.sha256(ca_bundle).hexdigest()}::{username}:{password}"


def bundle_hash(ca_bundle: bytes) -> str:
    return hashlib.sha256(ca_bundle).hexdigest()


def random_password() -> str:
    """A fresh server password (32 hex characters, as k3s generates)."""
    return secrets.token_hex(16)


def bootstrap_key(password: str) -> str:
    """Datastore key of the bootstrap blob for this token's password."""
    return "/bootstrap/" + hashlib.sha256(password.encode()).hexdigest()[:12]


def _derive(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 4096, 32)


def encrypt(password: str, payload: dict[str, bytes]) -> bytes:
    """Encrypt CA material with a key derived from the token password."""
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps({k: base64.b64encode(v).decode() for k, v in payload.items()}, sort_keys=True).encode()
    sealed = AESGCM(_derive(password, salt)).encrypt(nonce, plain, None)
    return json.dumps({"salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                       "data": base64.b64encode(sealed).decode()}).encode()


def decrypt(password: str, blob: bytes) -> dict[str, bytes] | None:
    """Decrypt a bootstrap blob; None when the password does not open it."""
    try:
        outer = json.loads(blob)
        key = _derive(password, base64.b64decode(outer["salt"]))
        plain = AESGCM(key).decrypt(base64.b64decode(outer["nonce"]), base64.b64decode(outer["data"]), None)
    except (InvalidTag, ValueError, KeyError, TypeError):
        return None
    return {k: base64.b64decode(v) for k, v in json.loads(plain).items()}
