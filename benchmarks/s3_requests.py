"""S3 requests and seconds of benchmarks/run.py's 16-chunk bicubic job (480 x 480 input px, chunks of 120, x4,
2 workers) writing its store to S3: a real S3 server (moto_server, from the venv) on loopback, its request log
split by the pipeline's phases (the template, the chunk tasks, the finish). N jobs, each to a new store:

    .venv/bin/python benchmarks/s3_requests.py 2

The request counts are exact and repeatable; the seconds are moto's on this 2-core VM (each request costs it
about 3-5 ms of CPU on the cores the job runs on), not AWS's.
"""
from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.io import store  # noqa: E402
from s2sr_cloud.pipeline import write as W  # noqa: E402

LOG = Path(tempfile.mkdtemp(prefix="s2sr-moto-")) / "requests.log"
PHASES = ((store, "write_template", "template"), (W, "_run_on_cluster", "chunk tasks"), (store, "finish", "finish"))
# "chunk tasks": the seconds and requests of _run_on_cluster, less the template's (written meanwhile, on the client)


def moto_server() -> tuple[subprocess.Popen, str]:
    """moto_server on a free loopback port, logging one line per request to ``LOG``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=LOG.open("w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return proc, url


REQUEST = re.compile(r'"([A-Z]+) \S+ HTTP/[\d.]+" \d{3}')


def requests() -> list[str]:
    """The method of each request moto has logged so far, in order."""
    return [m.group(1) for m in REQUEST.finditer(LOG.read_text())]


def methods(m: collections.Counter) -> str:
    return ", ".join(f"{v} {key}" for key, v in sorted(m.items()))


def counted(into: dict) -> None:
    """Each phase's (seconds, requests by method) into ``into``."""
    for mod, name, label in PHASES:
        def wrap(f, label=label):
            def timed(*a, **k):
                n0, t0 = len(requests()), time.perf_counter()
                try:
                    return f(*a, **k)
                finally:
                    methods = collections.Counter(requests()[n0:])
                    into[label] = (time.perf_counter() - t0, methods)
            return timed
        setattr(mod, name, wrap(getattr(mod, name)))


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    proc, endpoint = moto_server()
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "S2SR_S3_ENDPOINT": endpoint})
    phases: dict = {}
    counted(phases)
    try:
        store.filesystem("s3://results/")[0].mkdir("results")
        with R.served_tile() as catalog:
            geometry = R.window_geometry(R.TILE, 300, 300, 480, 480)
            for k in range(jobs):
                with R.cluster(2) as client:
                    n0, t0 = len(requests()), time.perf_counter()
                    ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=geometry, chunk=120)
                    sr = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120)
                    s2sr_cloud.write(sr, f"s3://results/job{k}.zarr", client=client)
                    seconds, total = time.perf_counter() - t0, len(requests()) - n0
                # (the template is written inside _run_on_cluster, while the chunks compute: counted once, as its own)
                s, m = phases["chunk tasks"]
                phases["chunk tasks"] = (s - phases["template"][0], m - phases["template"][1])
                parts = "; ".join(f"{label} {s:.2f} s, {sum(m.values())} requests ({methods(m)})"
                                  for label, (s, m) in phases.items())
                print(f"job {k + 1}/{jobs}: {seconds:.2f} s, {total} S3 requests; {parts}", flush=True)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
