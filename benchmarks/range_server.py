"""Static files with HTTP Range (what GDAL's /vsicurl needs) on loopback, in a process of its own, counting the
body bytes it sends (``GET /_served_bytes``; ``?reset=1`` zeroes the count). Prints its port, then serves until
killed. Standard library only: it starts in a few milliseconds.

    python benchmarks/range_server.py FOLDER

In the client's process (round 15 and before) its request threads shared the GIL with the scheduler's event loop
and the template writer: a read task's request waited for them, most of all while 2 workers read at once."""
from __future__ import annotations

import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COUNT_PATH = "/_served_bytes"


def serve(folder: Path) -> None:
    served = [0]
    lock = threading.Lock()

    class H(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)  # HEAD requests (GDAL's size probes) too

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.startswith(COUNT_PATH):
                with lock:
                    body = str(served[0]).encode()
                    if "reset=1" in self.path:
                        served[0] = 0
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            path = folder / self.path.lstrip("/").split("?")[0]
            if not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            rng = self.headers.get("Range")
            start, end = 0, size - 1
            if rng and rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                start, end = int(a), min(int(b) if b else size - 1, size - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            with path.open("rb") as f:  # the range only (reading the whole file per request cost the CPU)
                f.seek(start)
                body = f.read(max(0, end + 1 - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                served[0] += len(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
