"""Interactive figures without a kernel: Vega-Lite specifications that the static book draws
with its own copy of Vega (``book_assets/vega``, installed from the npm registry: no CDN) and
that JupyterLab draws natively.

Vega-Lite rather than Plotly or Bokeh: a figure is one small JSON document that carries its data
and its controls (``bind``: plain HTML inputs), Python builds it without a plotting library, and
its three scripts are the whole run-time.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from torch import Tensor

ASSETS = "../_static/vega/"  # from a chapter's page (book/NAME.html)
SCRIPTS = ("vega.min", "vega-lite.min", "vega-embed.min")

_LOADER = """<div class="nadkit-vega" id="{id}"></div>
<script type="text/javascript">
(function () {{
  var spec = {spec}, base = "{base}", options = {{mode: "vega-lite", renderer: "svg", actions: false}};
  function draw(vegaEmbed) {{ vegaEmbed("#{id}", spec, options).catch(console.error); }}
  if (typeof window.define === "function" && window.define.amd) {{  // require.js on the page (widgets)
    window.require.config({{paths: {{"vega": base + "vega.min", "vega-lite": base + "vega-lite.min",
                                     "vega-embed": base + "vega-embed.min"}}}});
    window.require(["vega-embed"], draw);
    return;
  }}
  window.nadkitVega = window.nadkitVega || {scripts}.reduce(function (ready, name) {{
    return ready.then(function () {{ return new Promise(function (done, fail) {{
      var s = document.createElement("script");
      s.src = base + name + ".js"; s.onload = done; s.onerror = fail;
      document.head.appendChild(s);
    }}); }});
  }}, Promise.resolve());
  window.nadkitVega.then(function () {{ draw(window.vegaEmbed); }});
}})();
</script>"""


class VegaLite:
    """A Vega-Lite figure: HTML that loads the book's Vega (static pages), and the Vega-Lite
    MIME type (JupyterLab)."""

    def __init__(self, spec: dict):
        self.spec = spec

    def html(self) -> str:
        return _LOADER.format(id=f"vega-{uuid.uuid4().hex[:8]}", spec=json.dumps(self.spec), base=ASSETS,
                              scripts=json.dumps(list(SCRIPTS)))

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"application/vnd.vegalite.v5+json": self.spec, "text/html": self.html()}


def _select(name: str, options: Sequence, label: str | None = None) -> dict:
    return {"name": name, "value": options[0],
            "bind": {"input": "select", "options": list(options), "name": f"{label or name} "}}


def rows(network: str, points: Sequence[str], series: Mapping[tuple[str, str], Sequence[float]]) -> list[dict]:
    """``curves``' rows of one network: ``series`` maps (measure, series name) to one value per
    point (NaN and None become gaps)."""
    out = []
    for (measure, name), values in series.items():
        for p, (point, v) in enumerate(zip(points, values)):
            v = None if v is None or v != v else float(v)
            out.append({"network": network, "measure": measure, "series": name, "point": p + 1, "name": point,
                        "value": v})
    return out


def curves(data: Sequence[Mapping], title: str, y: str = "value") -> VegaLite:
    """Per-point curves with a network and a measure to choose; ``data``: dicts (``rows``) with
    ``network``, ``measure``, ``series`` (one line each), ``point`` (1-based), ``name`` and
    ``value``. A series named "chance..." or "random..." (a null) is dashed."""
    nets = list(dict.fromkeys(r["network"] for r in data))
    measures = list(dict.fromkeys(r["measure"] for r in data))
    return VegaLite({
        "params": [_select("network", nets), _select("measure", measures)],
        "data": {"values": [dict(r) for r in data]},
        "transform": [{"filter": "datum.network === network && datum.measure === measure"},
                      {"calculate": "test(/^(chance|random)/, datum.series) ? 'chance' : 'observed'",
                       "as": "kind"}],
        "title": {"text": {"expr": "network + ': ' + measure + " + json.dumps(f" — {title}")}},
        "width": 560, "height": 260,
        "mark": {"type": "line", "point": True, "tooltip": True},
        "encoding": {
            "x": {"field": "name", "type": "ordinal", "sort": {"field": "point"}, "title": "mask point",
                  "axis": {"labelAngle": -45}},
            "y": {"field": "value", "type": "quantitative", "title": y},
            "color": {"field": "series", "type": "nominal", "title": None, "legend": {"orient": "bottom"}},
            "strokeDash": {"field": "kind", "type": "nominal", "legend": None,
                           "scale": {"domain": ["observed", "chance"], "range": [[1, 0], [4, 3]]}}},
    })


def _data_url(im: Image.Image, **save) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True, **save)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def gray_png(image: Tensor) -> str:
    """An image [C, H, W] as a gray PNG data URL, stretched to its own range."""
    g = image.mean(0).numpy()
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-8)
    return _data_url(Image.fromarray((g * 255).astype(np.uint8), mode="L"))


def _palette_png(index: np.ndarray, colors: Sequence[tuple[int, int, int]], transparent: int | None = None,
                 scale: int = 1) -> str:
    im = Image.fromarray(index.astype(np.uint8), mode="P")
    im.putpalette([v for c in colors for v in c])
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return _data_url(im, **({"transparency": transparent} if transparent is not None else {}))


def top_png(top: Tensor) -> str:
    """A map's top pixels (boolean [H, W]) in orange on a transparent PNG, to lay over the image."""
    return _palette_png(top.numpy(), [(0, 0, 0), (255, 140, 0)], transparent=0)


def kept_png(keep: Tensor, scale: int = 4) -> str:
    """A point's kept channels as a square grid PNG: kept green, dropped light gray."""
    side = int(np.ceil(np.sqrt(len(keep))))
    cells = np.full(side * side, 2)
    cells[:len(keep)] = keep.numpy().astype(int)
    return _palette_png(cells.reshape(side, side), [(217, 217, 217), (33, 140, 33), (255, 255, 255)], scale=scale)


def explorer(rows: Sequence[Mapping], originals: Sequence[Mapping], mosaics: Sequence[str]) -> VegaLite:
    """Choose a network, a class, a point and a mosaic: the class's kept channels at the point,
    and the top pixels of the point's channel-sum map through the sub-architecture ("Dis.") and
    the whole network ("Ori."), over the mosaic. ``rows``: per network, class and point, ``kept``
    (PNG), ``caption`` and ``dis0``.. (top pixels per mosaic); ``originals``: per network and
    point, ``ori0``..; ``mosaics``: the mosaics as PNG data URLs."""
    nets = list(dict.fromkeys(r["network"] for r in rows))
    classes = list(dict.fromkeys(r["class"] for r in rows))
    most = max(r["points"] for r in rows)
    at = {"filter": "datum.network === network && datum.point === min(point, datum.points)"}
    mine = {"filter": "datum['class'] === cls"}
    size = 150

    def image(field: str, data: Sequence[Mapping], transform: list) -> dict:
        return {"data": {"values": [dict(r) for r in data]}, "transform": transform,
                "mark": {"type": "image", "width": size, "height": size, "aspect": False},
                "encoding": {"url": {"field": field}, "x": {"value": size / 2}, "y": {"value": size / 2}}}

    def over_mosaic(field: str, data: Sequence[Mapping], transform: list, title: str) -> dict:
        pick = {"calculate": f"datum['{field}' + mosaic]", "as": field}
        base = image("url", [{"m": m, "url": u} for m, u in enumerate(mosaics)],
                     [{"filter": "datum.m === mosaic"}])
        return {"title": title, "width": size, "height": size,
                "layer": [base, image(field, data, transform + [pick])]}

    kept = image("kept", rows, [at, mine]) | {"title": "kept channels (green)", "width": size, "height": size}
    return VegaLite({
        "params": [_select("network", nets), _select("cls", classes, "class"),
                   {"name": "point", "value": most, "bind": {"input": "range", "min": 1, "max": most, "step": 1,
                                                             "name": "point "}},
                   {"name": "mosaic", "value": 0, "bind": {"input": "range", "min": 0, "max": len(mosaics) - 1,
                                                           "step": 1, "name": "mosaic "}}],
        "vconcat": [
            {"data": {"values": [dict(r) for r in rows]}, "transform": [at, mine], "width": 500, "height": 20,
             "mark": {"type": "text", "align": "left", "baseline": "middle", "x": 0, "y": 10, "fontSize": 14,
                      "fontWeight": "bold"},
             "encoding": {"text": {"field": "caption"}}},
            {"hconcat": [kept, over_mosaic("dis", rows, [at, mine], "Dis. (sub-architecture)"),
                         over_mosaic("ori", originals, [at], "Ori. (whole network)")]}],
    })


def explorer_data(subs: Mapping, nets: Mapping, images: Tensor, top: float = 0.05) -> tuple[list, list, list]:
    """The explorer's rows, originals and mosaics (see ``explorer``) for the runs ``subs`` (network
    label -> ``SubArchitectures``), their networks ``nets`` (label -> (model, points, test set))
    and the mosaics ``images`` [M, C, H, W], computed once when the book is built."""
    from .metrics import feature_maps

    rows, originals = [], []
    for a, sub in subs.items():
        model, points, _ = nets[a]
        n = len(sub.points)
        ori = [feature_maps(model, points, im, top=top)[1] for im in images]
        for p in range(n):
            originals.append({"network": a, "point": p + 1, "points": n} |
                             {f"ori{m}": top_png(o[p]) for m, o in enumerate(ori)})
        for i, c in enumerate(sub.classes):
            keep = [b[sub.row(c)] for b in sub.binary()]
            dis = [feature_maps(model, points, im, keep, top=top)[1] for im in images]
            label = f"{c}: {sub.class_names[i]}"
            for p, name in enumerate(sub.points):
                k = keep[p]
                rows.append({"network": a, "class": label, "point": p + 1, "points": n, "kept": kept_png(k),
                             "caption": f"{a}, class {label}, point {p + 1} ({name}): "
                                        f"{int(k.sum())} of {len(k)} channels kept"} |
                            {f"dis{m}": top_png(d[p]) for m, d in enumerate(dis)})
    return rows, originals, [gray_png(im) for im in images]
