"""A real STAC API on loopback (``rustac serve``): serves the embedded sample, and is what tests use."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CatalogError

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
SAMPLE_COLLECTION = "sentinel-2-l2a"
# embedded scenes by catalog name: (folder, collection id they are served as)
# sample: L2A tile 29RKH, 2020-02-19, decimated 10x (100/200/600 m pixels); what most tests use
# sample10m: real L1C (top of atmosphere) crop of tile 18SVG, 2016-01-12, at the NATIVE 10/20/60 m; make demo's scene
SAMPLES = {"sample": (SAMPLE_DIR, SAMPLE_COLLECTION),
           "sample10m": (SAMPLE_DIR.with_name("sample10m"), "sentinel-2-l1c")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rustac() -> str:
    exe = Path(sys.executable).with_name("rustac")
    found = str(exe) if exe.exists() else shutil.which("rustac")
    if not found:
        raise CatalogError("the sample catalog needs the rustac server: pip install rustac")
    return found


def collection_for(items: list[dict[str, Any]], collection_id: str) -> dict[str, Any]:
    xs = [v for it in items for v in (it["bbox"][0], it["bbox"][2])]
    ys = [v for it in items for v in (it["bbox"][1], it["bbox"][3])]
    times = sorted(it["properties"]["datetime"] for it in items)
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id, "license": "proprietary",
        "description": "Sentinel-2 L2A scenes served on loopback by s2sr-cloud",
        "extent": {"spatial": {"bbox": [[min(xs), min(ys), max(xs), max(ys)]]},
                   "temporal": {"interval": [[times[0], times[-1]]]}},
        "links": [],
    }


@contextlib.contextmanager
def serve_items(items: list[dict[str, Any]], collection_id: str = SAMPLE_COLLECTION) -> Iterator[str]:
    """Serve ``items`` (STAC item dicts with absolute hrefs) as a STAC API; yields its root URL."""
    with tempfile.TemporaryDirectory(prefix="s2sr-stac-") as tmp:
        items = [dict(it, collection=collection_id) for it in items]
        coll = Path(tmp) / "collection.json"
        coll.write_text(json.dumps(collection_for(items, collection_id)))
        feats = Path(tmp) / "items.json"
        feats.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        port = free_port()
        proc = subprocess.Popen([_rustac(), "serve", "--addr", f"127.0.0.1:{port}", "--use-duckdb", "false",
                                 str(coll), str(feats)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        err = proc.stderr.read().decode()[-300:] if proc.stderr else ""
                        raise CatalogError(f"the local STAC server did not start: {err}") from None
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def sample_items(root: Path = SAMPLE_DIR) -> list[dict[str, Any]]:
    """The embedded sample's item(s) with hrefs made absolute."""
    out = []
    for path in sorted(root.glob("item*.json")):
        item = json.loads(path.read_text())
        for asset in item["assets"].values():
            if asset["href"].startswith("./"):
                asset["href"] = (root / asset["href"][2:]).resolve().as_uri()
        out.append(item)
    return out


@contextlib.contextmanager
def sample_catalog(name: str = "sample") -> Iterator[str]:
    """Serve the embedded scene ``name`` (``SAMPLES``) as a STAC API on loopback; yields its root URL."""
    root, collection = SAMPLES[name]
    with serve_items(sample_items(root), collection) as url:
        yield url
