"""HTTP server for the lab's release mirror (runs inside the lab's `mirror` container).

It serves the release tree read-only, like the GitHub release download server
(``/<version>/<asset>``; a ``+`` in the version works raw and as ``%2B``) and, under host-named
prefixes, like dl.k8s.io, pkgs.k8s.io (paths with ``:`` such as ``core:/stable:``, raw or ``%3A``)
and github.com (see mirror.py), and answers the update-channel API the way update.k3s.io does:

* ``GET /v1-release/channels/<name>`` -> ``302 Found`` to ``/k3s-io/k3s/releases/tag/<version>``,
  whose last path segment is the version (that is how the official installer reads it);
* ``GET /k3s-io/k3s/releases/tag/<version>`` -> 200 with the version (the end of a redirect chain);
* ``GET /v1-release/channels`` -> JSON ``{"data": [{"id", "name", "latest"}...]}``.

Channel targets are the files ``v1-release/channels/<name>`` (one line: the version) in the tree.
Stdlib only: it runs on the lab image's Python.  Usage: ``mirror_server.py ROOT PORT``.
"""

from __future__ import annotations

import http.server
import json
import sys
import urllib.parse
from functools import partial
from pathlib import Path

CHANNEL_PREFIX = "/v1-release/channels"
TAG_PREFIX = "/k3s-io/k3s/releases/tag/"


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Static files plus update.k3s.io-style channel redirects."""

    server_version = "provision-lab-mirror/1"

    def do_GET(self) -> None:
        if not self._special():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._special():
            super().do_HEAD()

    def _special(self) -> bool:
        """Handle channel and tag URLs; False means: serve a plain file."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).rstrip("/")
        if path == CHANNEL_PREFIX:
            self._send(200, json.dumps({"type": "collection", "data": self._channels()}).encode(), "application/json")
            return True
        if path.startswith(CHANNEL_PREFIX + "/"):
            name = path[len(CHANNEL_PREFIX) + 1 :]
            version = {item["name"]: item["latest"] for item in self._channels()}.get(name)
            if version is None:
                self._send(404, f"channel {name!r} not found\n".encode(), "text/plain")
                return True
            self.send_response(302)
            host = self.headers.get("Host", "localhost")  # HTTP/1.1 clients always send it
            self.send_header("Location", f"http://{host}{TAG_PREFIX}{urllib.parse.quote(version, safe='+')}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if path.startswith(TAG_PREFIX):
            version = path[len(TAG_PREFIX) :]
            exists = (Path(self.directory) / version).is_dir()
            self._send(200 if exists else 404, (version + "\n").encode(), "text/plain")
            return True
        return False

    def _channels(self) -> list[dict[str, str]]:
        folder = Path(self.directory) / CHANNEL_PREFIX.lstrip("/")
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        return [{"id": f.name, "name": f.name, "latest": f.read_text(encoding="utf-8").strip()} for f in files]

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main() -> None:
    root, port = sys.argv[1], int(sys.argv[2])
    handler = partial(MirrorHandler, directory=root)
    address = ("0.0.0.0", port)  # noqa: S104 - all interfaces of its container, for the lab network
    server = http.server.ThreadingHTTPServer(address, handler)
    print(f"serving {root} on :{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
