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

from nadbook.plots import HIGHLIGHT, HIGHLIGHT_RGB

ASSETS = "../_static/vega/"  # from a chapter's page (book/NAME.html)
SCRIPTS = ("vega.min", "vega-lite.min", "vega-embed.min")
NUMBER = ".3~r"  # tooltips: three significant digits, trailing zeros dropped ("0.97", "1230")
QUADRANT = "#00bfff"  # the outline of the chosen class's quadrant on a mosaic
# text at least 9 pt (12 CSS px) as drawn; the figures are narrower than the book's column
CONFIG = {"axis": {"labelFontSize": 12, "titleFontSize": 12}, "legend": {"labelFontSize": 12, "titleFontSize": 12},
          "header": {"labelFontSize": 12, "titleFontSize": 12}, "title": {"fontSize": 14}, "text": {"fontSize": 12}}

_LOADER = """<div class="nadkit-vega" id="{id}"></div>
<script type="text/javascript">
(function () {{
  var spec = {spec}, base = "{base}", options = {{mode: "vega-lite", renderer: "svg", actions: false}};
  function draw(vegaEmbed) {{
    vegaEmbed("#{id}", spec, options)
      .then(function (result) {{ ({after})(result.view, document.getElementById("{id}")); }})
      .catch(console.error);
  }}
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
    MIME type (JupyterLab). ``after``: a JavaScript function ``(view, element) => ...`` run
    once the figure is drawn in the page (for what Vega-Lite's bindings cannot say, such as a
    slider's range that depends on another control)."""

    def __init__(self, spec: dict, after: str = "function (view, element) {}"):
        self.spec = {"config": CONFIG} | spec
        self.after = after

    def html(self) -> str:
        return _LOADER.format(id=f"vega-{uuid.uuid4().hex[:8]}", spec=json.dumps(self.spec), base=ASSETS,
                              scripts=json.dumps(list(SCRIPTS)), after=self.after)

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


def curves(data: Sequence[Mapping], title: str, y: str | None = None, on_top: Sequence[str] = ("NAD",)
           ) -> VegaLite:
    """Per-point curves with a network and a measure to choose; ``data``: dicts (``rows``) with
    ``network``, ``measure``, ``series`` (one line each), ``point`` (1-based), ``name`` and
    ``value``. A series named "chance..." or "random..." (a null) is dashed, and the legend says
    so; series whose names start with one of ``on_top`` (NAD's) are drawn above the others. The
    y axis is titled with the chosen measure (or ``y``); tooltips give the series, the point and
    the value to three significant digits."""
    nets = list(dict.fromkeys(r["network"] for r in data))
    measures = list(dict.fromkeys(r["measure"] for r in data))
    top = " || ".join(f"indexof(datum.series, {json.dumps(t)}) === 0" for t in on_top) or "false"
    tooltip = [{"field": "series", "title": "series"}, {"field": "name", "title": "mask point"},
               {"field": "measure", "title": "measure"}, {"field": "value", "title": "value", "format": NUMBER}]
    encoding = {
        "x": {"field": "name", "type": "ordinal", "sort": {"field": "point"}, "title": "mask point",
              "axis": {"labelAngle": -45}},
        "y": {"field": "value", "type": "quantitative", "title": y or None},
        "color": {"field": "series", "type": "nominal", "title": None, "legend": {"orient": "bottom", "columns": 4}},
        "strokeDash": {"field": "kind", "type": "nominal", "title": "line",
                       "legend": {"orient": "bottom", "direction": "horizontal", "symbolType": "stroke",
                                  "symbolSize": 400,
                                  # Vega-Lite draws a line-and-point legend's strokes transparent
                                  "encode": {"symbols": {"update": {"stroke": {"value": "#333"},
                                                                    "strokeWidth": {"value": 2}}}}},
                       "scale": {"domain": ["measured", "chance or random draw"], "range": [[1, 0], [4, 3]]}},
        "tooltip": tooltip}
    line = {"type": "line", "point": True}
    # the y axis titled with the chosen measure (an axis title cannot follow a parameter)
    axis_title = {"data": {"values": [{}]},
                  "mark": {"type": "text", "text": {"expr": "measure"}, "angle": 270, "x": -48, "y": 130,
                           "fontSize": 12, "fontWeight": "bold", "baseline": "bottom"}}
    lines = {"data": {"values": [dict(r) for r in data]},
             "transform": [{"filter": "datum.network === network && datum.measure === measure"},
                           {"calculate": "test(/^(chance|random)/, datum.series) ? "
                                         "'chance or random draw' : 'measured'", "as": "kind"}],
             "encoding": encoding,
             # every layer draws every series (a filter that leaves a layer empty makes Vega warn of
             # an infinite extent): the second, thick, shows only the series on top
             "layer": [{"mark": line},
                       {"mark": line | {"strokeWidth": 2.5},
                        "encoding": {"opacity": {"condition": {"test": top, "value": 1}, "value": 0}}}]}
    return VegaLite({
        "params": [_select("network", nets), _select("measure", measures)],
        "title": {"text": {"expr": "network + ': ' + measure + " + json.dumps(f" — {title}")}},
        "width": 560, "height": 260,
        "layer": [lines] + ([] if y else [axis_title]),
    })


# a five-pointed star (Vega has no "star" symbol; a name it does not know is read as an SVG path)
STAR = ("M0,-1L0.235,-0.324L0.951,-0.309L0.38,0.124L0.588,0.809L0,0.4L-0.588,0.809L-0.38,0.124"
        "L-0.951,-0.309L-0.235,-0.324Z")
SHAPES_AT = ["card's beta", "sweep", "collapsed (not measurable)"]  # circle, triangle, square


def against_kept(data: Sequence[Mapping], title: str, on_top: str = "NAD") -> VegaLite:
    """Effects along a sweep, with a network and a finding to choose: one line per method
    (``on_top``'s drawn thick, above the others; "random" dashed) against the share of channels
    kept, its 95% band where ``low`` and ``high`` are given, filled markers where the finding
    holds, the marker's shape by ``at`` (one of ``SHAPES_AT``; no legend: the text says it). ``data``: dicts
    with ``network``, ``finding``, ``method``, ``beta``, ``kept``, ``effect``, ``low``, ``high``
    (None: no interval), ``holds`` and ``at``, and optionally ``beats`` (true: a star, where NAD is
    better than every simple rule)."""
    nets = list(dict.fromkeys(r["network"] for r in data))
    findings = list(dict.fromkeys(r["finding"] for r in data))
    x = {"field": "kept", "type": "quantitative", "title": "share of channels kept", "scale": {"domain": [0, 1]}}
    # the legend drawn opaque (the band's opacity would carry over)
    color = {"field": "method", "type": "nominal", "title": None,
             "legend": {"orient": "bottom", "columns": 5, "symbolOpacity": 1, "symbolType": "circle"}}
    tooltip = [{"field": "method", "title": "method"}, {"field": "beta", "title": "beta", "format": NUMBER},
               {"field": "kept", "title": "kept share", "format": NUMBER},
               {"field": "effect", "title": "effect", "format": NUMBER},
               {"field": "holds", "title": "holds (its own test)"}, {"field": "at", "title": "which beta"}]
    dash = {"condition": {"test": "datum.method === 'random'", "value": [4, 3]}, "value": [1, 0]}
    width = {"condition": {"test": f"datum.method === {json.dumps(on_top)}", "value": 3}, "value": 1.5}
    cleaned = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in data]
    for r in cleaned:  # no interval: a band of no width (an empty band layer makes Vega warn)
        if r.get("low") is None or r.get("high") is None:
            r["low"] = r["high"] = r.get("effect")
        r.setdefault("beats", False)
    return VegaLite({
        "params": [_select("network", nets), _select("finding", findings)],
        "title": {"text": {"expr": "network + ': ' + finding"}, "subtitle": title, "subtitleFontSize": 12},
        "width": 560, "height": 260,
        "data": {"values": cleaned},
        "transform": [{"filter": "datum.network === network && datum.finding === finding"}],
        "encoding": {"x": x, "color": color},
        "layer": [
            {"mark": {"type": "area", "opacity": 0.15},
             "encoding": {"y": {"field": "low", "type": "quantitative"}, "y2": {"field": "high"}}},
            {"mark": {"type": "line"},
             "encoding": {"y": {"field": "effect", "type": "quantitative",
                                "title": "effect (in the finding's unit, above)"},
                          "strokeDash": dash, "strokeWidth": width,
                          "order": {"field": "kept"}}},
            {"mark": {"type": "point", "size": 50},
             "encoding": {"y": {"field": "effect", "type": "quantitative"},
                          "fill": {"condition": {"test": "datum.holds", "field": "method", "type": "nominal"},
                                   "value": "white"},
                          "shape": {"field": "at", "type": "nominal", "legend": None,  # said in the text
                                    "scale": {"domain": SHAPES_AT, "range": ["circle", "triangle-up", "square"]}},
                          "tooltip": tooltip}},
            {"mark": {"type": "point", "shape": STAR, "size": 260, "filled": True, "stroke": "black",
                      "strokeWidth": 1},
             "encoding": {"y": {"field": "effect", "type": "quantitative"}, "tooltip": tooltip,
                          "opacity": {"condition": {"test": "datum.beats === true", "value": 1}, "value": 0}}},
        ],
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
    """A map's top pixels (boolean [H, W]) in the highlight colour (``plots.HIGHLIGHT``) on a
    transparent PNG, to lay over the image."""
    return _palette_png(top.numpy(), [(0, 0, 0), HIGHLIGHT_RGB], transparent=0)


def kept_png(keep: Tensor, scale: int = 4) -> str:
    """A point's kept channels as a square grid PNG: kept in the highlight colour, dropped light
    gray."""
    side = int(np.ceil(np.sqrt(len(keep))))
    cells = np.full(side * side, 2)
    cells[:len(keep)] = keep.numpy().astype(int)
    return _palette_png(cells.reshape(side, side), [(217, 217, 217), HIGHLIGHT_RGB, (255, 255, 255)], scale=scale)


# the point slider follows the network: its range is the network's points (Vega-Lite's bound
# inputs have a fixed range), a point past the new end moving to the last one
_FOLLOW = """function (view, element) {
  var points = %s;
  function follow() {
    var n = points[view.signal("network")], input = element.querySelector('input[name="point"]');
    if (!input || !n) return;
    input.max = n;
    if (+view.signal("point") > n) { view.signal("point", n).runAsync(); }
  }
  view.addSignalListener("network", follow);
  follow();
}"""
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def covering_mosaics(quadrants: Tensor, classes: Sequence[int], at_least: int = 3) -> list[int]:
    """Indices of mosaics (``quadrants``: their classes [M, 4], as ``nadkit.mosaics`` returns)
    in which every class of ``classes`` appears at least once, greedily (the mosaic with the
    most classes not yet shown first), and at least ``at_least`` of them: the explorer then has a
    mosaic to show for every class."""
    left, picked = set(int(c) for c in classes), []
    rows = [set(int(c) for c in q) for q in quadrants]
    while left and len(picked) < len(rows):
        best = max((m for m in range(len(rows)) if m not in picked), key=lambda m: len(rows[m] & left))
        if not rows[best] & left:
            break
        picked.append(best)
        left -= rows[best]
    picked += [m for m in range(len(rows)) if m not in picked][:max(0, at_least - len(picked))]
    return picked


def explorer(rows: Sequence[Mapping], originals: Sequence[Mapping], mosaics: Sequence[str],
             quadrants: Sequence[Sequence[str]] | None = None) -> VegaLite:
    """Choose a network, a class, a point and a mosaic: the class's kept channels at the point,
    and the top pixels of the point's channel-sum map through the sub-architecture ("Dis.") and
    the whole network ("Ori."), over the mosaic, the class's quadrant outlined. ``rows``: per
    network, class and point, ``kept`` (PNG), ``caption`` and ``dis0``.. (top pixels per mosaic);
    ``originals``: per network and point, ``ori0``..; ``mosaics``: the mosaics as PNG data URLs;
    ``quadrants``: per mosaic, the class label (as in ``rows``) of each quadrant.

    The point slider runs over the chosen network's points; the mosaic slider offers first the
    mosaics that contain the chosen class."""
    nets = list(dict.fromkeys(r["network"] for r in rows))
    classes = list(dict.fromkeys(r["class"] for r in rows))
    counts = {r["network"]: r["points"] for r in rows}
    quadrants = [list(q) for q in quadrants] if quadrants is not None else [[] for _ in mosaics]
    order = {c: sorted(range(len(mosaics)), key=lambda m: c not in quadrants[m]) for c in classes}
    where = {c: [quadrants[m].index(c) if c in quadrants[m] else -1 for m in order[c]] for c in classes}
    most = max(counts.values())
    at = {"filter": "datum.network === network && datum.point === min(point, datum.points)"}
    mine = {"filter": "datum['class'] === cls"}
    size = 150

    def image(field: str, data: Sequence[Mapping], transform: list) -> dict:
        return {"data": {"values": [dict(r) for r in data]}, "transform": transform,
                "mark": {"type": "image", "width": size, "height": size, "aspect": False},
                "encoding": {"url": {"field": field}, "x": {"value": size / 2}, "y": {"value": size / 2}}}

    half = size / 2
    outline = {"data": {"values": [{"q": q, "x": half * (q % 2), "y": half * (q // 2)} for q in range(4)]},
               "transform": [{"filter": "datum.q === quadrant"}, {"calculate": "datum.x + " + str(half), "as": "x2"},
                             {"calculate": "datum.y + " + str(half), "as": "y2"}],
               "mark": {"type": "rect", "filled": False, "stroke": QUADRANT, "strokeWidth": 3, "strokeDash": [6, 3]},
               "encoding": {"x": {"field": "x", "type": "quantitative", "scale": None},
                            "x2": {"field": "x2"},
                            "y": {"field": "y", "type": "quantitative", "scale": None},
                            "y2": {"field": "y2"}}}

    def over_mosaic(field: str, data: Sequence[Mapping], transform: list, title: str) -> dict:
        pick = {"calculate": f"datum['{field}' + shown]", "as": field}
        base = image("url", [{"m": m, "url": u} for m, u in enumerate(mosaics)], [{"filter": "datum.m === shown"}])
        return {"title": title, "width": size, "height": size,
                "layer": [base, image(field, data, transform + [pick]), outline]}

    kept = image("kept", rows, [at, mine]) | {"title": "kept channels (orange)", "width": size, "height": size}
    corners = json.dumps(list(CORNERS))
    place = ("quadrant >= 0 ? 'mosaic ' + mosaic + ': the class is in the ' + " + corners
             + "[quadrant] + ' quadrant (dashed outline)' : 'mosaic ' + mosaic + "
             "': the class is not in this mosaic'")
    return VegaLite({
        "params": [_select("network", nets), _select("cls", classes, "class"),
                   {"name": "point", "value": counts[nets[0]],
                    "bind": {"input": "range", "min": 1, "max": most, "step": 1, "name": "point "}},
                   {"name": "mosaic", "value": 1, "bind": {"input": "range", "min": 1, "max": len(mosaics),
                                                           "step": 1, "name": "mosaic (the class's first) "}},
                   {"name": "shown", "expr": json.dumps(order) + "[cls][mosaic - 1]"},
                   {"name": "quadrant", "expr": json.dumps(where) + "[cls][mosaic - 1]"}],
        "vconcat": [
            {"data": {"values": [dict(r) for r in rows]}, "transform": [at, mine], "width": 500, "height": 40,
             "layer": [
                 {"mark": {"type": "text", "align": "left", "baseline": "middle", "x": 0, "y": 10, "fontSize": 14,
                           "fontWeight": "bold"},
                  "encoding": {"text": {"field": "caption"}}},
                 {"transform": [{"calculate": place, "as": "where"}],
                  "mark": {"type": "text", "align": "left", "baseline": "middle", "x": 0, "y": 32, "fontSize": 13},
                  "encoding": {"text": {"field": "where"}}}]},
            {"hconcat": [kept, over_mosaic("dis", rows, [at, mine], "Dis. (sub-architecture)"),
                         over_mosaic("ori", originals, [at], "Ori. (whole network)")]}],
    }, after=_FOLLOW % json.dumps(counts))


def explorer_data(subs: Mapping, nets: Mapping, images: Tensor, top: float = 0.05,
                  quadrants: Tensor | None = None) -> tuple[list, list, list, list]:
    """The explorer's rows, originals, mosaics and quadrants (see ``explorer``) for the runs
    ``subs`` (network label -> ``SubArchitectures``), their networks ``nets`` (label -> (model,
    points, test set)), the mosaics ``images`` [M, C, H, W] and their classes ``quadrants``
    [M, 4] (``nadkit.mosaics``' second result), computed once when the book is built."""
    from nadkit.metrics import feature_maps

    rows, originals, labels = [], [], {}
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
            label = labels.setdefault(c, f"{c}: {sub.class_names[i]}")
            for p, name in enumerate(sub.points):
                k = keep[p]
                rows.append({"network": a, "class": label, "point": p + 1, "points": n, "kept": kept_png(k),
                             "caption": f"{a}, class {label}, point {p + 1} of {n} ({name}): "
                                        f"{int(k.sum())} of {len(k)} channels kept"} |
                            {f"dis{m}": top_png(d[p]) for m, d in enumerate(dis)})
    where = [[labels.get(int(c), str(int(c))) for c in q] for q in quadrants] if quadrants is not None else None
    return rows, originals, [gray_png(im) for im in images], where
