"""The book's kernel-free figures: their data survive the trip through PNG and JSON."""

import base64
import io
import json

import numpy as np
import torch
from PIL import Image

from nadkit import vega


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
    green = (im == [33, 140, 33]).all(-1)
    assert im.shape[:2] == (9, 9) and green.sum() == 3 * 9


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
