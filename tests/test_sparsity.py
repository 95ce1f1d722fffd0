"""The sparsity sweep (issue 23), in the smoke profile: each beta's run, its collapse and its
findings for NAD, every heuristic and random channels at NAD's counts."""

import pytest

from nadkit import book, sparsity


@pytest.fixture()
def smoke(monkeypatch, tmp_path):
    monkeypatch.setenv("NADKIT_PROFILE", "smoke")
    monkeypatch.setenv("NADKIT_QUIET", "1")
    monkeypatch.setitem(sparsity.BETAS, "vgg16", (0.3, 30.0))


def test_the_sweep_reports_sparsity_collapse_and_every_rivals_findings(smoke):
    s = book.Settings.of(archs="vgg16")
    sparsity.run(["vgg16"])
    rows = sparsity.summary("vgg16", s, progress=False)
    assert [r["beta"] for r in rows] == [0.3, 30.0]
    dense, sparse = rows
    assert sparse["kept"] < dense["kept"]  # a larger beta keeps fewer channels
    for r in rows:
        assert 0 <= r["empty class-points"] <= 1 and 0 < r["top answer share"] <= 1
        assert set(r["rivals"]) == set(book.BASELINE_METHODS)
        assert "specific" in r["nad"] and "fewer" in r["nad"]
