"""The public side shared by the stand-in tunnels (fake_ngrok.py, fake_cloudflared.py): a request
handler that reads a request, forwards it to the local server as the real edges do (hop-by-hop
headers dropped, the tunnel's own headers added) and sends the answer back.

Imported by those scripts when they run as the stand-in programs (their folder is on sys.path).
"""

from __future__ import annotations

import http.client
import http.server

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "content-length"}


class EdgeHandler(http.server.BaseHTTPRequestHandler):
    """Reads, forwards and answers; a subclass decides what to do around ``forward``."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def forward(self, target: tuple[str, int], body: bytes, added: dict[str, str]) -> None:
        """Send the request on to ``target`` with ``added`` headers and answer with its answer.

        Raises:
            OSError: the local server could not be reached (the caller answers as its edge does).
        """
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(added)
        conn = http.client.HTTPConnection(*target, timeout=10)
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], data)

    def send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
