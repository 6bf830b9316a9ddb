"""Render a ``ReportData`` into one self-contained HTML page (pure: a string in, a string out).

Everything is inline: the images are PNG data URIs, the plots inline SVG, the script and style inline, and a
Content-Security-Policy forbids the page any network request, so it opens the same from a laptop, an e-mail or a
bucket. The viewer is a canvas that draws two layers split by a swipe slider, with nearest-neighbour zoom
(powers of two, so output pixels stay square and sharp) and drag-to-pan.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from .data import ReportData, consistency_error
from .images import bar_plots_svg, chunk_map_svg, gradient_css

PAIRS = {
    "input-model": ("input", "model", "input (native pixels) | super-resolved"),
    "bicubic-model": ("bicubic", "model", "bicubic | model"),
    "model-detail": ("model", "detail", "super-resolved | detail layer"),
}

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'none'; form-action 'none'; base-uri 'none'")

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:0 24px 40px;color:#1d2228;
background:#fafafa;max-width:1200px}
h1{font-size:1.35em;margin:18px 0 4px}h2{font-size:1.1em;margin:28px 0 8px;border-bottom:1px solid #ccc}
.sub{color:#555;margin:0 0 12px}
#viewer{position:relative;width:100%;max-width:1152px}
#view{display:block;width:100%;height:620px;background:#222;cursor:grab;touch-action:none;image-rendering:pixelated}
#view.drag{cursor:grabbing}
#swipe{width:100%;margin:6px 0 0}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0}
.controls button,.controls select{font:inherit;padding:3px 9px}
#readout{font-family:ui-monospace,Menlo,monospace;font-size:.85em;color:#333;min-height:1.3em}
.cbar{display:flex;align-items:center;gap:8px;font-size:.85em}
.cbar .bar{width:220px;height:12px;border:1px solid #888}
table{border-collapse:collapse;font-size:.85em;margin:6px 0 14px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#eee}
td.k,th.k{text-align:left}td pre{margin:0;text-align:left;white-space:pre-wrap;max-width:820px}
.plots svg{max-width:100%;height:auto}
.note{color:#6b4e00;background:#fff6d8;padding:6px 10px;border-left:3px solid #e0b000;margin:6px 0}
dl{font-size:.9em}dt{font-weight:600}dd{margin:0 0 6px 16px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  const META = JSON.parse(document.getElementById("meta").textContent);
  const canvas = document.getElementById("view");
  const ctx = canvas.getContext("2d");
  const swipe = document.getElementById("swipe");
  const pair = document.getElementById("pair");
  const overlay = document.getElementById("overlay");
  const readout = document.getElementById("readout");
  const imgs = {};
  for (const key of ["input", "model", "bicubic", "detail"]) imgs[key] = document.getElementById("img-" + key);
  const W = META.width, H = META.height;
  const view = {z: 1, tx: 0, ty: 0};

  function resize() {
    const r = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(r.width));
    canvas.height = Math.max(1, Math.round(r.height));
  }
  function fit() {
    view.z = Math.min(canvas.width / W, canvas.height / H);
    view.tx = (canvas.width - W * view.z) / 2;
    view.ty = (canvas.height - H * view.z) / 2;
    draw();
  }
  function zoomAt(factor, cx, cy) {
    const z = Math.min(64, Math.max(0.05, view.z * factor));
    // keep the output pixel under (cx, cy) where it is
    view.tx = cx - (cx - view.tx) * z / view.z;
    view.ty = cy - (cy - view.ty) * z / view.z;
    view.z = z;
    draw();
  }
  function setZoom(z) {
    zoomAt(z / view.z, canvas.width / 2, canvas.height / 2);
  }
  function side(key, xa, xb) {
    ctx.save();
    ctx.beginPath();
    ctx.rect(xa, 0, xb - xa, canvas.height);
    ctx.clip();
    ctx.setTransform(view.z, 0, 0, view.z, view.tx, view.ty);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(imgs[key], 0, 0, W, H);  // the input image is scale x smaller: drawn as native pixels
    const a = Number(overlay.value) / 100;
    if (a > 0 && key !== "detail") {
      ctx.globalAlpha = a;
      ctx.drawImage(imgs.detail, 0, 0, W, H);
    }
    ctx.restore();
  }
  function label(text, x, align) {
    ctx.font = "13px system-ui, sans-serif";
    const w = ctx.measureText(text).width + 12;
    const x0 = align === "left" ? x : x - w;
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(x0, 8, w, 22);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x0 + 6, 24);
  }
  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const split = Math.round(canvas.width * Number(swipe.value) / Number(swipe.max));
    const p = META.pairs[pair.value];
    side(p[0], 0, split);
    side(p[1], split, canvas.width);
    ctx.fillStyle = "#fff";
    ctx.fillRect(split - 1, 0, 2, canvas.height);
    label(META.labels[p[0]], 8, "left");
    label(META.labels[p[1]], canvas.width - 8, "right");
    document.getElementById("zoomlevel").textContent =
      view.z >= 1 ? view.z.toFixed(view.z % 1 ? 2 : 0) + " screen px per output px"
                  : "1 screen px per " + (1 / view.z).toFixed(2) + " output px";
  }

  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    drag = {x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty};
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add("drag");
  });
  canvas.addEventListener("pointermove", (e) => {
    const r = canvas.getBoundingClientRect();
    const cx = (e.clientX - r.left) * canvas.width / r.width, cy = (e.clientY - r.top) * canvas.height / r.height;
    if (drag) {
      view.tx = drag.tx + (e.clientX - drag.x) * canvas.width / r.width;
      view.ty = drag.ty + (e.clientY - drag.y) * canvas.height / r.height;
      draw();
    }
    const col = Math.floor((cx - view.tx) / view.z), row = Math.floor((cy - view.ty) / view.z);
    if (col >= 0 && row >= 0 && col < W && row < H) {
      const gx = META.geo.x0 + col * META.geo.dx, gy = META.geo.y0 + row * META.geo.dy;
      readout.textContent = "output pixel (" + (META.x0 + col) + ", " + (META.y0 + row) + ")  input pixel (" +
        Math.floor((META.x0 + col) / META.scale) + ", " + Math.floor((META.y0 + row) / META.scale) + ")  " +
        META.geo.crs + "  x " + gx.toFixed(1) + " m, y " + gy.toFixed(1) + " m";
    }
  });
  const end = (e) => { drag = null; canvas.classList.remove("drag"); };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 2 : 0.5, (e.clientX - r.left) * canvas.width / r.width,
           (e.clientY - r.top) * canvas.height / r.height);
  }, {passive: false});
  swipe.addEventListener("input", draw);
  pair.addEventListener("change", draw);
  overlay.addEventListener("input", draw);
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("one").addEventListener("click", () => setZoom(1));
  document.getElementById("native").addEventListener("click", () => setZoom(16 / META.scale));
  document.getElementById("zin").addEventListener("click", () => setZoom(view.z * 2));
  document.getElementById("zout").addEventListener("click", () => setZoom(view.z / 2));
  window.addEventListener("resize", () => { resize(); draw(); });

  const ready = Promise.all(Object.values(imgs).map((im) => im.decode())).then(() => {
    resize();
    fit();
    document.body.dataset.ready = "1";
    return true;
  });
  window.s2srReport = {ready: ready, view: view, draw: draw, fit: fit, setZoom: setZoom};
})();
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:.3g}" if v != 0 else "0"
    return str(v)


def _stats_html(data: ReportData) -> str:
    parts = []
    for comp, rows in data.stats.items():
        metrics = list(next(iter(rows.values())).keys()) if rows else []
        head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
        body = "".join(
            f"<tr><td class=k>{html.escape(b)}</td><td>{data.resolutions[data.bands.index(b)] if b in data.bands else ''}"
            f"</td>" + "".join(f"<td>{_fmt(rows[b][m])}</td>" for m in metrics) + "</tr>" for b in rows)
        sam = f"<tr><td class=k>SAM (deg)</td><td></td><td colspan={len(metrics)}>{_fmt(data.sam[comp])}</td></tr>" \
            if comp in data.sam else ""
        parts.append(f"<h3>{html.escape(comp)}</h3><table><tr><th class=k>band</th><th>native m</th>{head}</tr>"
                     f"{body}{sam}</table>")
    if data.stats_attrs:
        items = []
        for name, attrs in data.stats_attrs.items():
            desc = "; ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in attrs.items())
            items.append(f"<dt>{html.escape(name)}</dt><dd>{desc}</dd>")
        parts.append("<dl>" + "".join(items) + "</dl>")
    return "".join(parts) or "<p>(the store holds no statistics)</p>"


def _provenance_html(attrs: dict[str, Any]) -> str:
    rows = []
    for k in sorted(attrs):
        v = attrs[k]
        if isinstance(v, (dict, list)):
            text = json.dumps(v, indent=1, sort_keys=isinstance(v, dict), default=str)
            cell = f"<pre>{html.escape(text)}</pre>"
        else:
            cell = f"<pre>{html.escape(str(v))}</pre>"
        rows.append(f"<tr><td class=k>{html.escape(str(k))}</td><td>{cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_html(data: ReportData) -> str:
    """The whole page as one string."""
    c = data.crop
    labels = {"input": f"input ({' '.join(data.shown)}, native pixels)", "model": f"super-resolved x{data.scale}",
              "bicubic": f"bicubic x{data.scale}", "detail": "detail layer"}
    if data.provenance.get("model") == "bicubic":
        labels["model"] = f"super-resolved x{data.scale} (model: bicubic)"
    meta = {"width": c["width"], "height": c["height"], "x0": c["x0"], "y0": c["y0"], "scale": data.scale,
            "geo": data.geo, "labels": labels, "pairs": {k: [a, b] for k, (a, b, _) in PAIRS.items()}}
    options = "".join(f'<option value="{k}">{html.escape(t)}</option>' for k, (_, _, t) in PAIRS.items())
    cons = consistency_error(data)
    notes = list(data.notes)
    notes.insert(0, "The input layer is the store's output averaged over each input pixel's native footprint: by the "
                 "store's exact spectral consistency this is the input the run read"
                 + (f" (largest consistency RMSE in the statistics: {cons:.2g} reflectance)." if math.isfinite(cons)
                    else "."))
    plots = bar_plots_svg(data.stats, data.bands, data.resolutions) if data.stats else ""
    cmap = data.chunk_map
    chunk_plot = chunk_map_svg(cmap["values"], cmap["xs"], cmap["ys"], cmap["title"]) if cmap else ""
    meta_json = json.dumps(meta).replace("</", "<\\/")
    g = data.geo
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>s2sr-cloud report: {html.escape(data.title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>s2sr-cloud report</h1>
<p class=sub>{html.escape(data.title)} &middot; {html.escape(data.time)} &middot; {html.escape(str(g['crs']))}
 &middot; output pixel {abs(g['dx']):g} m &middot; bands {html.escape(', '.join(data.bands))}</p>
<h2>Before / after</h2>
<div class=controls>
 <label>compare <select id=pair>{options}</select></label>
 <button id=fit>fit</button><button id=zout>&minus;</button><button id=zin>+</button>
 <button id=one>1:1 output pixels</button><button id=native>1 input pixel = 16 screen px</button>
 <span id=zoomlevel></span>
 <label>detail overlay <input id=overlay type=range min=0 max=100 value=0></label>
 <span class=cbar>detail 0 <span class=bar style="background:{gradient_css()}"></span>
  {data.detail_vmax:.3g} reflectance (RMS over bands)</span>
</div>
<div id=viewer><canvas id=view width=1152 height=620 aria-label="before/after viewer"></canvas>
<input id=swipe type=range min=0 max=1000 value=500 aria-label="swipe position"></div>
<div id=readout>drag to pan, wheel or +/&minus; to zoom (powers of two), slider to swipe</div>
<p class=sub>Crop: output pixels x {c['x0']}&ndash;{c['x0'] + c['width']}, y {c['y0']}&ndash;{c['y0'] + c['height']}
 of {c['full_width']} x {c['full_height']}; upper-left pixel centre x {g['x0']:.1f} m, y {g['y0']:.1f} m.
 Same colour stretch (2&ndash;98 % of the input) on every layer.</p>
{''.join(f'<p class=note>{html.escape(n)}</p>' for n in notes)}
<div hidden>
<img id=img-input alt="input" src="{data.input_png}">
<img id=img-model alt="super-resolved" src="{data.model_png}">
<img id=img-bicubic alt="bicubic" src="{data.bicubic_png}">
<img id=img-detail alt="detail layer" src="{data.detail_png}">
</div>
<h2>Per-band statistics</h2>
<p class=sub><b>consistency</b>: output averaged over each input pixel's native footprint vs the input (~0 by
construction). <b>point</b>: each output pixel vs the input pixel containing it (how much sub-pixel detail was
added). Other comparisons, when the store has them, are listed as they are named there.</p>
{_stats_html(data)}
<div class=plots>{plots}</div>
<div class=plots>{chunk_plot}</div>
<h2>Provenance (store attributes)</h2>
{_provenance_html(data.provenance)}
<script type="application/json" id=meta>{meta_json}</script>
<script>{SCRIPT}</script>
</body></html>
"""
