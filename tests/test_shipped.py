"""The results the book ships in data/results/ are what the code computes: one of them (vgg16,
seed 0) is recomputed from scratch here and compared with the shipped file."""

import json
import os

import pytest
import torch

from nadbook import book
from nadkit.subarch import SubArchitectures


def shipped_vgg16():
    os.environ.pop("NADKIT_PROFILE", None)
    try:
        s = book.Settings.of(archs="vgg16")
        return s.run_config("vgg16", 0), book.run_dir(s.run_config("vgg16", 0))
    finally:
        os.environ["NADKIT_PROFILE"] = "smoke"


def test_shipped_folders_say_how_they_were_made():
    runs = [p for p in book.SHIPPED.glob("*/meta.json")]
    assert runs, "no shipped results in data/results/"
    for meta in runs:
        m = json.loads(meta.read_text())
        assert m["config"]["weights_sha256"] and m["nadkit"]
        assert all("steps" in st for st in m["status"].values())


@pytest.mark.skipif(not os.environ.get("CI") and not os.environ.get("NADKIT_RECOMPUTE"),
                    reason="minutes of CPU: runs in CI (CI=true) or with NADKIT_RECOMPUTE=1")
@pytest.mark.slow
def test_a_shipped_result_is_recomputed_exactly(tmp_path):
    """The shipped results were computed with one thread (`make reproduce` does the same): the
    sums inside a convolution, and so the last bits, depend on the thread count. They also depend
    on the CPU (oneDNN picks its kernels by instruction set), and hundreds of optimiser steps
    amplify them: on this machine the recomputation is bit-identical, on another CPU mask values
    moved by 4e-4 (CI, 2026-12-01). What must not move is the sub-architecture itself.

    Two of the ten classes are recomputed, the two that ran longest: a class's masks depend only
    on its own images and seed (tests/test_disentangle.py: class-batched equals one class at a
    time), so they are the shipped run's rows, at a fifth of the CPU time."""
    config, folder = shipped_vgg16()
    assert folder.is_relative_to(book.SHIPPED), "the book's vgg16 run is not shipped"
    shipped = SubArchitectures.load(folder)
    longest = sorted(shipped.status, key=lambda c: (-shipped.status[c]["steps"], int(c)))[:2]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = book.pipeline.disentangle(book._spec(dict(config, classes=",".join(longest))), tmp_path / "again",
                                          progress=False)
    finally:
        torch.set_num_threads(threads)
    rows = [shipped.classes.index(int(c)) for c in longest]
    assert again.classes == [int(c) for c in longest]
    assert again.status == {c: shipped.status[c] for c in longest}
    for point in shipped.points:
        assert torch.equal(again.masks[point] > 0.5, shipped.masks[point][rows] > 0.5), point
        assert (again.masks[point] - shipped.masks[point][rows]).abs().max() < 5e-3, point


@pytest.mark.skipif(not os.environ.get("CI") and not os.environ.get("NADKIT_RECOMPUTE"),
                    reason="a minute of CPU: runs in CI (CI=true) or with NADKIT_RECOMPUTE=1")
@pytest.mark.slow
def test_a_shipped_ablation_point_is_recomputed(tmp_path):
    """The last point of the shipped vgg16 ablation, ablated again on its own (a point draws its
    random sets from its place among the network's points, so it needs none of the others)."""
    from nadkit import ablate, pipeline

    _, folder = shipped_vgg16()
    shipped = ablate.load(folder / "ablation")
    cfg, last = shipped["config"], shipped["points"][-1]
    again = pipeline.ablation(folder, tmp_path / "one", [last], None, cfg["orders"], cfg["draws"],
                              cfg["popularity_draws"], cfg["per_class"], progress=False)
    a, b = again["results"][last], shipped["results"][last]
    assert a.keys() == b.keys()
    for k in a:  # predictions are argmax: bit-identical here; another CPU may flip a near-tie
        assert torch.equal(a[k].isnan(), b[k].isnan()), k
        moved = (a[k] - b[k]).nan_to_num().abs() > 1e-6
        assert moved.float().mean() < 1e-3, f"{k}: {int(moved.sum())} of {moved.numel()} values differ"


def test_reproduce_refuses_bad_arguments_in_one_line():
    with pytest.raises(SystemExit, match="whole number of processes"):
        book.main(["reproduce", "--jobs", "two"])
    with pytest.raises(SystemExit, match="unknown network.*vgg61.*choose from vgg16"):
        book.main(["reproduce", "vgg61"])


@pytest.mark.slow
def test_the_shipped_tree_is_what_the_full_book_reads(tmp_path, monkeypatch):
    """With data/results/ as shipped, precompute (everything the chapters read at their defaults)
    computes nothing, and every shipped folder is one it uses: nothing missing, nothing stale."""
    monkeypatch.delenv("NADKIT_PROFILE", raising=False)
    monkeypatch.setenv("NADKIT_RESULTS", str(tmp_path / "computed"))
    used = {f.name for f in book.precompute()}
    computed = list((tmp_path / "computed").rglob("*.*")) if (tmp_path / "computed").exists() else []
    assert not computed, f"not shipped: {computed[:5]}"
    assert {f.name for f in book.SHIPPED.iterdir()} == used
