"""``s2sr report``: one self-contained HTML file per store (before/after viewer, statistics, provenance).

    from s2sr_cloud.report import write_report
    write_report("demo.zarr", "demo_report.html")

``data`` reads the store (the only I/O), ``images`` encodes arrays and plots in memory, ``html`` renders the page.
"""

from __future__ import annotations

import os

from .data import ReportData, read_report_data
from .html import render_html


def report_path(out: str) -> str:
    """Where ``s2sr run --report`` puts the report: next to the store (``demo.zarr`` -> ``demo_report.html``)."""
    return out.rstrip("/").removesuffix(".zarr") + "_report.html"


def write_report(url: str, html_path: str | None = None, *, max_size: int = 1024, time: int = 0) -> str:
    """Write the HTML report of the finished store ``url`` to ``html_path`` (local or ``s3://``; default next to
    the store); returns the path. ``max_size``: output pixels per side of the viewer's centred crop."""
    path = html_path or report_path(url)
    page = render_html(read_report_data(url, max_size=max_size, time=time))
    if "://" in path and not path.startswith("file://"):
        from ..io.store import filesystem

        fs, p = filesystem(path)
        with fs.open(p, "w", encoding="utf-8") as f:
            f.write(page)
    else:
        path = path.removeprefix("file://")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return path


__all__ = ["ReportData", "read_report_data", "render_html", "report_path", "write_report"]
