"""The certificates, keys and kubeconfigs kubeadm writes (RSA-2048, kubeadm's default ``encryptionAlgorithm``).

CAs are valid 10 years, leaves 1 year, as kubeadm issues them. Also the pieces discovery and TLS bootstrap need:
the CA public-key pin (``sha256:<hex of the SubjectPublicKeyInfo DER>``), CSR signing, AES-GCM for the
``kubeadm-certs`` Secret, and detached JWS signatures for ``cluster-info``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import host

CA_YEARS = 10
LEAF_DAYS = 365


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption()))


def new_ca(common_name: str) -> Pair:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Pair(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def issue(ca: Pair, common_name: str, *, organizations: tuple[str, ...] = (), dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), server: bool = False, client: bool = False, public_key: Any = None,
          key: Any = None) -> Pair:
    """A leaf signed by ``ca``; ``public_key`` signs someone else's key (CSR) and returns no key."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, None)
    own = None
    if public_key is None:
        own = key or new_key()
        public_key = own.public_key()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    now = _now()
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
    )
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return Pair(cert.public_bytes(serialization.Encoding.PEM), key_pem(own) if own is not None else b"")


def save(directory: Path, stem: str, pair: Pair) -> None:
    host.write(directory / f"{stem}.crt", pair.cert, 0o644)
    if pair.key:
        host.write(directory / f"{stem}.key", pair.key, 0o600)


def load(directory: Path, stem: str) -> Pair:
    return Pair((directory / f"{stem}.crt").read_bytes(), (directory / f"{stem}.key").read_bytes())


def new_sa_keys(directory: Path) -> None:
    key = new_key()
    host.write(directory / "sa.key", key_pem(key), 0o600)
    host.write(directory / "sa.pub", key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)


def ca_hash(cert_pem: bytes) -> str:
    """kubeadm's public-key pin: ``sha256:`` + hex SHA-256 of the certificate's SubjectPublicKeyInfo DER."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def cert_sans(cert_pem: bytes) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


# ---- kubeconfigs --------------------------------------------------------------------------------------------


def kubeconfig(server: str, ca_pem: bytes, user: str, cert_pem: bytes = b"", key_pem_: bytes = b"",
               *, cluster: str = "kubernetes", cert_file: str = "", token: str = "") -> str:
    """A kubeconfig in kubeadm's layout (cluster ``kubernetes``, context ``<user>@kubernetes``)."""
    creds: dict[str, Any] = {}
    if cert_file:
        creds = {"client-certificate": cert_file, "client-key": cert_file}
    elif token:
        creds = {"token": token}
    elif cert_pem:
        creds = {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                 "client-key-data": base64.b64encode(key_pem_).decode()}
    context = f"{user}@{cluster}"
    doc = {"apiVersion": "v1",
           "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server},
                         "name": cluster}],
           "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
           "current-context": context, "kind": "Config", "preferences": {},
           "users": [{"name": user, "user": creds}]}
    return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=True))


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The ``kubeconfig`` of ``kube-public/cluster-info``: the CA and the endpoint, no user, cluster name ``""``."""
    doc = {"apiVersion": "v1",
           "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server},
                         "name": ""}],
           "contexts": None, "current-context": "", "kind": "Config", "preferences": {}, "users": None}
    return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=True))


def read_kubeconfig(path: Path) -> dict[str, Any]:
    """server, ca (PEM), cert/key (PEM) of the current context."""
    doc = yaml.safe_load(path.read_text()) or {}
    context_name = doc.get("current-context", "")
    context = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == context_name), {})
    cluster = next((c["cluster"] for c in doc.get("clusters") or [] if c.get("name") == context.get("cluster")),
                   (doc.get("clusters") or [{}])[0].get("cluster", {}))
    user = next((u["user"] for u in doc.get("users") or [] if u.get("name") == context.get("user")), {})
    out: dict[str, Any] = {"server": cluster.get("server", ""),
                           "ca": base64.b64decode(cluster.get("certificate-authority-data", "") or b"")}
    if user.get("client-certificate-data"):
        out["cert"] = base64.b64decode(user["client-certificate-data"])
        out["key"] = base64.b64decode(user["client-key-data"])
    elif user.get("client-certificate"):
        out["cert"] = host.path(user["client-certificate"]).read_bytes()
        out["key"] = host.path(user.get("client-key") or user["client-certificate"]).read_bytes()
    if user.get("token"):
        out["token"] = user["token"]
    return out


# ---- secrets --------------------------------------------------------------------------------------------------


def encrypt(data: bytes, key_hex: str) -> bytes:
    """AES-GCM with the nonce in front, as kubeadm seals the kubeadm-certs Secret."""
    nonce = os.urandom(12)
    return nonce + AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, data, None)


def decrypt(data: bytes, key_hex: str) -> bytes:
    return AESGCM(bytes.fromhex(key_hex)).decrypt(data[:12], data[12:], None)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_detached(content: str, token_id: str, token_secret: str) -> str:
    """Detached compact JWS (HS256, ``kid`` = token id) over ``content``: ``header..signature``."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(signature)}"


def jws_valid(detached: str, content: str, token_id: str, token_secret: str) -> bool:
    return hmac.compare_digest(detached, jws_detached(content, token_id, token_secret))
