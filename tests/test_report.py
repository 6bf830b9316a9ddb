"""``s2sr report``: one self-contained HTML file, checked as a file and in a real headless Chromium.

The browser test drives Debian's ``chromium`` through ``chromium-driver`` (Selenium); ``.ci/run`` installs both.
It is skipped, with the reason, where they are not installed. ``S2SR_REPORT_STORE=PATH`` reuses an existing
finished store instead of running the bicubic job; ``S2SR_UPDATE_SCREENSHOT=1`` copies the browser's screenshot to
docs/report_screenshot.png (the one the README shows).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory, dask_cluster) -> Path:
    if os.environ.get("S2SR_REPORT_STORE"):
        return Path(os.environ["S2SR_REPORT_STORE"])
    out = tmp_path_factory.mktemp("report") / "run.zarr"
    # the CLI in this process, on the shared cluster (`s2sr report` below runs as a process of its own)
    from s2sr_cloud.cli import main

    assert main(["run", "--out", str(out), "--model", "bicubic", "--no-progress", "--scheduler",
                 dask_cluster.scheduler.address]) == 0
    return out


@pytest.fixture(scope="module")
def report(store, tmp_path_factory) -> Path:
    html = tmp_path_factory.mktemp("html") / "report.html"
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "report", str(store), "--html", str(html)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"report: {html}" in r.stdout
    return html


def test_report_is_one_self_contained_file(report, store):
    from s2sr_cloud import open_output

    text = report.read_text(encoding="utf-8")
    # no reference that a browser would fetch: every image is a data URI, script and style are inline
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text, flags=re.I)
    outside = [r[:40] for r in refs if not r.startswith(("data:", "#"))]  # '#...': ids inside the page
    assert refs and not outside, outside
    assert "<link" not in text and "@import" not in text
    assert set(re.findall(r"url\(([^)]*)\)", text)) <= {f"#{i}" for i in re.findall(r'id="([^"]+)"', text)}
    assert "default-src 'none'" in text  # and the Content-Security-Policy forbids any request anyway
    assert text.count("data:image/png;base64,") == 4
    ds = open_output(str(store))
    # the provenance and the statistics table of the store
    assert ds.attrs["stac_items"][0] in text and ds.attrs["created"] in text and ds.attrs["software"] in text
    assert f"model {ds.attrs['model']}" in text and (ds.attrs.get("model_sha256") or "") in text
    for b in ds.attrs["bands"]:
        assert f"<td class=k>{b}</td>" in text
    assert f"{float(ds.stats.sel(comparison='point', band='B12', metric='rmse')):.3g}" in text
    assert text.count("<svg") >= 1  # the plots, inline


def test_report_cli_refuses_an_incomplete_or_missing_store(tmp_path):
    r = subprocess.run([sys.executable, "-m", "s2sr_cloud.cli", "report", str(tmp_path / "nothing.zarr"),
                        "--html", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "s2sr: error:" in r.stderr
    assert not (tmp_path / "r.html").exists()


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                              else None)
    if chromium is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver; .ci/run does it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def test_viewer_in_headless_chromium(report, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = _browser()
    try:
        browser.get(report.as_uri())
        WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        # every image decodes, and the input is the super-resolved image's size divided by the scale
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(sizes) == 4 and all(ok and w > 0 and h > 0 for _, ok, w, h in sizes), sizes
        dims = {i: (w, h) for i, _, w, h in sizes}
        meta = browser.execute_script("return JSON.parse(document.getElementById('meta').textContent)")
        s = meta["scale"]
        assert dims["img-model"] == dims["img-bicubic"] == dims["img-detail"] == (meta["width"], meta["height"])
        assert dims["img-input"] == (meta["width"] // s, meta["height"] // s)

        canvas = browser.find_element(By.ID, "view")
        swipe = browser.find_element(By.ID, "swipe")
        z0 = browser.execute_script("return s2srReport.view.z")  # fit
        browser.find_element(By.ID, "native").click()  # one input pixel = 16 screen pixels
        assert browser.execute_script("return s2srReport.view.z") == pytest.approx(16 / s)
        # drive the slider with the keyboard, as a user would: all the way left, then all the way right
        swipe.send_keys(Keys.HOME)
        assert swipe.get_attribute("value") == "0"
        right_only = _pixels(canvas.screenshot_as_png)
        swipe.send_keys(Keys.END)
        assert swipe.get_attribute("value") == "1000"
        left_only = _pixels(canvas.screenshot_as_png)
        changed = np.abs(right_only - left_only).max(axis=-1) > 8
        # (input native pixels vs the super-resolved image: smooth areas agree, edges and texture do not)
        assert changed.mean() > 0.05, f"only {changed.mean():.1%} of the canvas changed with the slider"
        # and half way: the left half is the input, the right half the super-resolved image
        swipe.send_keys(Keys.ARROW_LEFT * 500)
        assert swipe.get_attribute("value") == "500"
        half = _pixels(canvas.screenshot_as_png)
        w = half.shape[1]
        assert np.abs(half[:, : w // 2 - 4] - left_only[:, : w // 2 - 4]).max(axis=-1).mean() < 8
        assert np.abs(half[:, w // 2 + 4:] - right_only[:, w // 2 + 4:]).max(axis=-1).mean() < 8

        # the other pairs draw other layers
        Select(browser.find_element(By.ID, "pair")).select_by_value("model-detail")
        detail = _pixels(canvas.screenshot_as_png)
        assert (np.abs(detail - half).max(axis=-1) > 8).mean() > 0.1
        Select(browser.find_element(By.ID, "pair")).select_by_value("bicubic-model")

        # zoom by powers of two around the centre, then pan by dragging
        browser.find_element(By.ID, "zout").click()
        assert browser.execute_script("return s2srReport.view.z") == pytest.approx(8 / s)
        assert 8 / s > z0
        tx = browser.execute_script("return s2srReport.view.tx")
        ActionChains(browser).move_to_element(canvas).click_and_hold().move_by_offset(120, 40).release().perform()
        assert browser.execute_script("return s2srReport.view.tx") == pytest.approx(tx + 120, abs=2)
        assert "output pixel (" in browser.find_element(By.ID, "readout").text  # map coordinates under the mouse

        Select(browser.find_element(By.ID, "pair")).select_by_value("input-model")
        shot = tmp_path / "report_screenshot.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20000
        if os.environ.get("S2SR_UPDATE_SCREENSHOT"):
            shutil.copy(shot, ROOT / "docs" / "report_screenshot.png")

        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert not errors, errors
    finally:
        browser.quit()
