"""Certificates the way k3s lays them out under ``<data-dir>/server/tls/``.

Self-signed ECDSA P-256 CAs (server-ca signs serving certs, client-ca signs client
certs, request-header-ca, etcd/server-ca and etcd/peer-ca), a serving certificate for
the supervisor/apiserver port whose SANs decide which addresses kubectl accepts, and
the admin client certificate embedded in k3s.yaml. Written with ``cryptography`` using
only APIs present in Debian bookworm's 38.x.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILES = (
    "server-ca.crt", "server-ca.key", "client-ca.crt", "client-ca.key",
    "request-header-ca.crt", "request-header-ca.key",
    "etcd/server-ca.crt", "etcd/server-ca.key", "etcd/peer-ca.crt", "etcd/peer-ca.key",
    "service.key",
)
_CA_NAMES = {
    "server-ca": "k3s-server-ca", "client-ca": "k3s-client-ca", "request-header-ca": "k3s-request-header-ca",
    "etcd/server-ca": "etcd-server-ca", "etcd/peer-ca": "etcd-peer-ca",
}


@dataclass(frozen=True)
class KeyPair:
    """PEM certificate and key."""

    cert: bytes
    key: bytes


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file that may hold a secret: created with ``mode`` before any byte lands."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow().replace(microsecond=0)


def new_ca(common_name: str) -> KeyPair:
    """A self-signed CA valid for ten years, like k3s's."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(ca: KeyPair, common_name: str, *, organizations: tuple[str, ...] = (), dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = (), server: bool = False, client: bool = False, days: int = 365) -> KeyPair:
    """A leaf certificate signed by ``ca``."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    key = _new_key()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(hours=1))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
    )
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns) if d]
    alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips) if i]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load_pair(tls_dir: Path, stem: str) -> KeyPair:
    return KeyPair((tls_dir / f"{stem}.crt").read_bytes(), (tls_dir / f"{stem}.key").read_bytes())


def save_pair(tls_dir: Path, stem: str, pair: KeyPair) -> None:
    (tls_dir / stem).parent.mkdir(parents=True, exist_ok=True)
    (tls_dir / f"{stem}.crt").write_bytes(pair.cert)
    os.chmod(tls_dir / f"{stem}.crt", 0o644)
    write_private(tls_dir / f"{stem}.key", pair.key)


def ensure_cas(tls_dir: Path) -> None:
    """Create every missing cluster CA and the service-account key."""
    stamp = int(_now().timestamp())
    for stem, prefix in _CA_NAMES.items():
        if not (tls_dir / f"{stem}.crt").exists():
            save_pair(tls_dir, stem, new_ca(f"{prefix}@{stamp}"))
    if not (tls_dir / "service.key").exists():
        write_private(tls_dir / "service.key", _key_pem(_new_key()))


def read_ca_material(tls_dir: Path) -> dict[str, bytes]:
    """CA files a joining server needs, keyed by path relative to tls/."""
    return {name: (tls_dir / name).read_bytes() for name in CA_FILES if (tls_dir / name).exists()}


def write_ca_material(tls_dir: Path, material: dict[str, bytes]) -> bool:
    """Write CA files received from the cluster; returns True if anything changed."""
    changed = False
    for name, data in material.items():
        if name not in CA_FILES:
            continue
        path = tls_dir / name
        if path.exists() and path.read_bytes() == data:
            continue
        changed = True
        if name.endswith(".key"):
            write_private(path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return changed


def cert_sans(cert_pem: bytes) -> tuple[set[str], set[str]]:
    """DNS and IP SANs of a certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(ext.get_values_for_type(x509.DNSName)), {str(i) for i in ext.get_values_for_type(x509.IPAddress)}


def _issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    return cert.issuer == ca.subject


def ensure_leaf(tls_dir: Path, stem: str, ca_stem: str, common_name: str, *, organizations: tuple[str, ...] = (),
                dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), server: bool = False,
                client: bool = False) -> KeyPair:
    """Reuse ``stem`` if it is signed by the current CA and covers the SANs; else re-issue."""
    ca = load_pair(tls_dir, ca_stem)
    crt = tls_dir / f"{stem}.crt"
    if crt.exists() and (tls_dir / f"{stem}.key").exists():
        existing = load_pair(tls_dir, stem)
        have_dns, have_ips = cert_sans(existing.cert)
        want_ips = {str(ipaddress.ip_address(i)) for i in ips if i}
        if _issued_by(existing.cert, ca.cert) and set(d for d in dns if d) <= have_dns and want_ips <= have_ips:
            return existing
    pair = issue(ca, common_name, organizations=organizations, dns=dns, ips=ips, server=server, client=client)
    save_pair(tls_dir, stem, pair)
    return pair


def fingerprint_bundle(bundle: bytes) -> str:
    """sha256 hex of a CA bundle file's bytes: the hash in a K10 token (single-cert bundle)."""
    import hashlib

    return hashlib.sha256(bundle).hexdigest()
