"""Ansible module: can this host reach the external K3s datastore and log in to it?

Run on every server before anything is installed, so that a wrong password or a closed port is reported as exactly
that, instead of K3s retrying "Failed to connect to datastore" until a start timeout. The password is a no_log
parameter: Ansible masks it in every result and log line, and this module never puts it in a message.
"""

from __future__ import annotations

import importlib
import re
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: k3s_datastore_check
short_description: Check a K3s external datastore (PostgreSQL, MySQL/MariaDB, etcd) is reachable and usable
options:
  endpoint: {type: str, required: true, description: datastore-endpoint without password}
  password: {type: str, default: "", no_log: true, description: the datastore password}
  ca_file: {type: str, default: "", description: datastore-cafile on this host}
  cert_file: {type: str, default: "", description: datastore-certfile on this host}
  key_file: {type: str, default: "", description: datastore-keyfile on this host}
  timeout: {type: int, default: 5, description: seconds per connection attempt}
"""

_MYSQL_ACCESS_DENIED = 1045  # ER_ACCESS_DENIED_ERROR
_MYSQL_HOST_NOT_PRIVILEGED = 1130  # ER_HOST_NOT_PRIVILEGED
_MYSQL_RE = re.compile(r"^mysql://(?:(?P<user>[^:@/]*)(?::[^@]*)?@)?tcp\((?P<addr>[^)]+)\)/(?P<db>[^?]*)")


class DatastoreCheckError(Exception):
    """The datastore cannot be used; the message says why in words a person can act on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unreachable | auth | database | tls | unsupported


def _split_hostport(addr: str, default_port: int) -> tuple[str, int]:
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = addr.rpartition(":")
    return (host, int(port)) if sep else (addr, default_port)


def _tcp(host: str, port: int, timeout: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except socket.gaierror as exc:
        raise DatastoreCheckError("unreachable", f"cannot resolve {host}: {exc.strerror}") from exc
    except TimeoutError as exc:
        raise DatastoreCheckError("unreachable", f"no answer from {host}:{port} within {timeout}s (firewall?)") from exc
    except OSError as exc:
        raise DatastoreCheckError("unreachable", f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc


def _driver(name: str, package: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return package


def _check_postgres(endpoint: str, password: str, timeout: int) -> str:
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "localhost", parts.port or 5432
    _tcp(host, port, timeout)
    driver = _driver("psycopg2", "python3-psycopg2")
    if isinstance(driver, str):
        return f"{host}:{port} reachable; credentials not checked ({driver} is not installed on this host)"
    user, database = parts.username or "", (parts.path.lstrip("/") or "postgres")
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    sslmode = query.get("sslmode", "prefer")
    for dbname in (database, "postgres"):
        try:
            conn = driver.connect(
                host=host,
                port=port,
                user=user,
                password=password,
                dbname=dbname,
                sslmode=sslmode,
                connect_timeout=timeout,
            )
        except driver.OperationalError as exc:
            text = " ".join(str(exc).split())
            if "does not exist" in text and "database" in text and dbname != "postgres":
                continue  # k3s (kine) creates its database when the account may
            where = f"PostgreSQL at {host}:{port}"
            if "password authentication failed" in text or "no password supplied" in text:
                raise DatastoreCheckError("auth", f"{where} refused user {user!r}: wrong password") from exc
            if "no pg_hba.conf entry" in text:
                raise DatastoreCheckError(
                    "auth", f"{where} does not allow user {user!r} from this host (no pg_hba.conf entry)"
                ) from exc
            raise DatastoreCheckError("database", f"{where}: {text[:300]}") from exc
        conn.close()
        note = "" if dbname == database else f"; database {database!r} does not exist yet (k3s creates it)"
        return f"PostgreSQL at {host}:{port} accepted user {user!r}{note}"
    raise DatastoreCheckError("database", f"PostgreSQL at {host}:{port}: no usable database")


def _check_mysql(endpoint: str, password: str, timeout: int) -> str:
    match = _MYSQL_RE.match(endpoint)
    if match is None:
        raise DatastoreCheckError("unsupported", "not in k3s's MySQL form mysql://user@tcp(host:3306)/db")
    host, port = _split_hostport(match.group("addr"), 3306)
    _tcp(host, port, timeout)
    driver = _driver("pymysql", "python3-pymysql")
    if isinstance(driver, str):
        return f"{host}:{port} reachable; credentials not checked ({driver} is not installed on this host)"
    user, database = match.group("user") or "root", match.group("db") or None
    try:
        conn = driver.connect(host=host, port=port, user=user, password=password, connect_timeout=timeout)
    except driver.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        where = f"MySQL/MariaDB at {host}:{port}"
        if code == _MYSQL_ACCESS_DENIED:
            raise DatastoreCheckError("auth", f"{where} refused user {user!r}: wrong password") from exc
        if code == _MYSQL_HOST_NOT_PRIVILEGED:
            raise DatastoreCheckError("auth", f"{where} does not allow user {user!r} from this host") from exc
        raise DatastoreCheckError("database", f"{where}: {' '.join(str(exc).split())[:300]}") from exc
    conn.close()
    return f"MySQL/MariaDB at {host}:{port} accepted user {user!r}" + (f" (database {database})" if database else "")


def _check_etcd(endpoint: str, ca_file: str, cert_file: str, key_file: str, timeout: int) -> str:
    answered = []
    errors = []
    for url in [u.strip() for u in endpoint.split(",") if u.strip()]:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 2379
        try:
            _tcp(host, port, timeout)
            context = None
            if parts.scheme == "https":
                context = ssl.create_default_context(cafile=ca_file or None)
                if cert_file:
                    context.load_cert_chain(cert_file, key_file or None)
            health = f"{parts.scheme}://{parts.netloc}/health"
            with urllib.request.urlopen(health, timeout=timeout, context=context) as resp:  # noqa: S310 - user's etcd
                body = resp.read().decode("utf-8", "replace")
            if '"health":"true"' not in body.replace(" ", ""):
                errors.append(f"{host}:{port} is not healthy ({body.strip()[:120]})")
                continue
            answered.append(f"{host}:{port}")
        except DatastoreCheckError as exc:
            errors.append(str(exc))
        except ssl.SSLError as exc:
            errors.append(
                f"TLS with {host}:{port} failed: {exc.reason or exc} (check datastore-cafile/-certfile/-keyfile)"
            )
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                errors.append(
                    f"TLS with {host}:{port} failed: {reason.reason or reason} "
                    "(check datastore-cafile/certfile/keyfile)"
                )
            else:
                errors.append(f"{host}:{port}: {reason}")
    if not answered:
        kind = "tls" if any("TLS" in e for e in errors) else "unreachable"
        raise DatastoreCheckError(kind, "no etcd endpoint is usable: " + "; ".join(errors))
    return "etcd healthy at " + ", ".join(answered) + (f" (not usable: {'; '.join(errors)})" if errors else "")


def check(params: dict[str, Any]) -> str:
    endpoint, password, timeout = params["endpoint"], params["password"] or "", params["timeout"]
    scheme = endpoint.partition("://")[0]
    if scheme in ("postgres", "postgresql"):
        return _check_postgres(endpoint, password, timeout)
    if scheme == "mysql":
        return _check_mysql(endpoint, password, timeout)
    if scheme in ("http", "https"):
        return _check_etcd(endpoint, params["ca_file"], params["cert_file"], params["key_file"], timeout)
    raise DatastoreCheckError("unsupported", f"scheme {scheme!r} is not an external datastore k3s supports")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "endpoint": {"type": "str", "required": True},
            "password": {"type": "str", "default": "", "no_log": True},
            "ca_file": {"type": "str", "default": ""},
            "cert_file": {"type": "str", "default": ""},
            "key_file": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    try:
        message = check(module.params)
    except DatastoreCheckError as exc:
        text = str(exc)
        if module.params["password"]:
            text = text.replace(module.params["password"], "********")
        module.fail_json(msg=f"datastore check failed ({exc.kind}): {text}", problem=exc.kind)
    module.exit_json(changed=False, msg=message)


if __name__ == "__main__":
    main()
