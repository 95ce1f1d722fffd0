"""The book's kernel-free figures: their data survive the trip through PNG and JSON."""

import base64
import io
import json

import numpy as np
import torch
from PIL import Image

from nadbook import plots, vega


def decode(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_top_pixels_come_back_exactly_and_the_rest_is_transparent():
    top = torch.rand(12, 12) > 0.9
    im = decode(vega.top_png(top)).convert("RGBA")
    alpha = np.asarray(im)[..., 3]
    assert np.array_equal(alpha > 0, top.numpy())


def test_kept_grid_shows_every_kept_channel_once():
    keep = torch.tensor([True, False, True, True, False])
    im = np.asarray(decode(vega.kept_png(keep, scale=3)).convert("RGB"))
    kept = (im == plots.HIGHLIGHT_RGB).all(-1)
    assert im.shape[:2] == (9, 9) and kept.sum() == 3 * 9


def test_rows_turn_nan_into_gaps_and_curves_offer_every_network_and_measure():
    a = vega.rows("vgg16", ["p1", "p2"], {("kappa", "instance 0"): [0.1, float("nan")]})
    b = vega.rows("darts", ["c1", "c2"], {("hit rate", "random"): [0.3, 0.4]})
    assert [r["value"] for r in a] == [0.1, None]
    spec = vega.curves(a + b, "t").spec
    json.dumps(spec, allow_nan=False)  # valid JSON for the page
    params = {p["name"]: p["bind"]["options"] for p in spec["params"]}
    assert params == {"network": ["vgg16", "darts"], "measure": ["kappa", "hit rate"]}
    html = vega.curves(a + b, "t").html()
    loader = html.replace(json.dumps(spec), "")  # the page's script without the figure's data
    assert "../_static/vega/" in loader and "http" not in loader and "cdn" not in loader.lower()


def test_curves_say_what_they_draw_tooltips_rounded_axis_titled_dashes_explained():
    data = vega.rows("vgg16", ["p1", "p2"], {("hit rate", "NAD"): [0.970312476158, 0.5],
                                             ("hit rate", "random"): [0.25, 0.26]})
    spec = vega.curves(data, "t").spec
    lines, title = spec["layer"]
    enc = lines["encoding"]
    titles = [title["mark"]] if title["mark"]["type"] == "text" else []
    assert enc["y"]["title"] is None and titles[0]["text"] == {"expr": "measure"}  # not "value"
    value = [t for t in enc["tooltip"] if t["field"] == "value"][0]
    assert value["format"] == vega.NUMBER and "kind" not in [t["field"] for t in enc["tooltip"]]
    assert enc["strokeDash"]["legend"]["encode"]["symbols"]["update"]["stroke"]["value"]  # drawn, not transparent
    assert spec["config"]["axis"]["labelFontSize"] >= 12  # 9 pt
    top = [layer for layer in lines["layer"] if layer["mark"].get("strokeWidth")]
    assert len(top) == 1 and lines["layer"][-1] is top[0]  # NAD drawn last, on top
    assert "NAD" in top[0]["encoding"]["opacity"]["condition"]["test"]  # and only NAD there
    assert all("transform" not in layer for layer in lines["layer"])  # no layer left empty: no Vega warning


def test_mosaics_cover_every_class_and_the_explorer_offers_the_class_s_first():
    quads = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4], [5, 6, 7, 8], [9, 0, 1, 2], [3, 4, 5, 6]])
    picked = vega.covering_mosaics(quads, list(range(10)))
    assert set(quads[picked].flatten().tolist()) == set(range(10)) and len(picked) == 4  # 3 cannot cover
    two = vega.covering_mosaics(quads, [0, 1], at_least=3)
    assert two[0] == 0 and len(two) == 3
    rows = [{"network": n, "class": c, "point": p, "points": k, "kept": "", "caption": "", "dis0": "", "dis1": ""}
            for n, k in (("vgg16", 13), ("resnet50", 17)) for c in ("a", "b") for p in range(1, k + 1)]
    originals = [{"network": n, "point": p, "points": k, "ori0": "", "ori1": ""}
                 for n, k in (("vgg16", 13), ("resnet50", 17)) for p in range(1, k + 1)]
    fig = vega.explorer(rows, originals, ["m0", "m1"], [["x", "y", "z", "w"], ["z", "b", "y", "x"]])
    params = {p["name"]: p for p in fig.spec["params"]}
    assert params["point"]["value"] == 13  # the first network's last point
    assert params["shown"]["expr"] == json.dumps({"a": [0, 1], "b": [1, 0]}) + "[cls][mosaic - 1]"
    assert params["quadrant"]["expr"] == json.dumps({"a": [-1, -1], "b": [1, -1]}) + "[cls][mosaic - 1]"
    assert json.dumps({"vgg16": 13, "resnet50": 17}) in fig.html()  # the slider's range per network
