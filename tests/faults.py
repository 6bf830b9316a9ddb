"""A real fault-injecting HTTP proxy for S3 traffic: forwards to the S3 server, but answers 503 SlowDown or drops
the connection for a seeded fraction of requests (reads and writes alike). ``gdal_rate``: another fraction for
GDAL's requests (the COG reads, far fewer than s3fs's store requests, so they need a higher rate to be hit
reliably); ``counts`` also has the faults per client (``gdal``, ``s3fs``)."""

from __future__ import annotations

import http.client
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, upstream: str, rate: float, seed: int = 0, gdal_rate: float | None = None) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.rate = rate
        self.gdal_rate = rate if gdal_rate is None else gdal_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "503": 0, "reset": 0, "gdal": 0, "s3fs": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                client = "gdal" if self.headers.get("User-Agent", "").startswith("GDAL") else "s3fs"
                rate = proxy.gdal_rate if client == "gdal" else proxy.rate
                with proxy.lock:
                    proxy.counts["requests"] += 1
                    roll = proxy.rng.random()
                    if roll < rate:
                        proxy.counts[client] += 1
                if roll < rate / 2:
                    with proxy.lock:
                        proxy.counts["503"] += 1
                    msg = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if roll < rate:
                    with proxy.lock:
                        proxy.counts["reset"] += 1
                    self.close_connection = True
                    self.connection.close()  # connection reset without an answer
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
