"""The sparsity sweep (issue 23), in the smoke profile: each beta's run, its collapse and its
findings for NAD, every heuristic and random channels at NAD's counts."""

import pytest

from nadkit import book, sparsity


@pytest.fixture()
def smoke(monkeypatch):
    monkeypatch.setenv("NADKIT_PROFILE", "smoke")
    monkeypatch.setenv("NADKIT_QUIET", "1")


def test_the_sweep_reports_sparsity_collapse_and_every_rivals_findings(smoke):
    """The chapter's smoke sweep (the grid's first and last betas: the book's smoke build computes
    the same runs, so the tests share them)."""
    s = book.Settings.of(archs="vgg16")
    rows = sparsity.chapter(["vgg16"], s, progress=False)["vgg16"]
    assert [r["beta"] for r in rows] == [sparsity.BETAS["vgg16"][0], sparsity.BETAS["vgg16"][-1]]
    dense, sparse = rows
    assert sparse["kept"] < dense["kept"]  # a larger beta keeps fewer channels
    for r in rows:
        assert 0 <= r["empty class-points"] <= 1 and 0 < r["top answer share"] <= 1
        assert set(r["rivals"]) == set(book.BASELINE_METHODS)
        assert "specific" in r["nad"] and "fewer" in r["nad"]


def _row(beta, kept, nad, rival, empty=0.0, key="specific"):
    from nadkit.findings import Finding

    def found(values):
        return {key: Finding(True, float(sum(values) / len(values)), "", values=list(values))}
    return {"beta": beta, "kept": kept, "nad": found(nad), "rivals": {"taylor": found(rival)},
            "random": {}, "empty class-points": empty, "top answer share": 0.1}


def test_the_sweep_verdict_follows_the_numbers():
    from nadkit.sparsity import verdict

    ahead = [0.9 + 0.001 * i for i in range(10)]
    level = [0.7 + 0.001 * i for i in range(10)]
    rows = [_row(0.3, 0.9, level, level), _row(0.5, 0.5, ahead, level), _row(0.6, 0.3, ahead, level),
            _row(1.0, 0.1, ahead, level, empty=0.8)]
    text = verdict(rows, "specific")
    assert "holds at kept share 0.30-0.90 (3 of 3 measurable betas)" in text
    assert "NAD's own" in text and "at kept share 0.30-0.50" in text and "not measurable at beta 1" in text
    behind = [_row(0.5, 0.5, level, ahead), _row(0.6, 0.3, level, ahead)]
    assert "NAD's own at no sparsity" in verdict(behind, "specific")
    hit = [_row(0.5, 0.5, [0.1], [0.05], key="hit"), _row(0.6, 0.3, [0.02], [0.05], key="hit")]
    assert "above every heuristic's at kept share 0.50 (one instance" in verdict(hit, "hit")


def test_the_headline_says_where_nad_is_its_own_or_that_it_is_nowhere():
    from nadkit.sparsity import headline

    ahead = [0.9 + 0.001 * i for i in range(10)]
    level = [0.7 + 0.001 * i for i in range(10)]
    won = {"vgg16": [_row(0.3, 0.9, level, level), _row(0.5, 0.5, ahead, level)]}
    assert "for *sub-architectures are specific to their class* on vgg16 at kept share 0.50" in headline(won)
    lost = {"vgg16": [_row(0.3, 0.9, level, level), _row(0.5, 0.5, level, ahead)]}
    assert "at no sparsity" in headline(lost) and "vgg16 (2 of 9 betas)" in headline(lost)


def test_keeping_the_class_does_not_count_where_the_answer_is_constant():
    from nadkit.findings import Finding
    from nadkit.sparsity import verdict

    rows = [_row(0.3, 0.8, [0.9] * 10, [0.5] * 10, key="accuracy"), _row(0.5, 0.5, [0.9] * 10, [0.5] * 10, key="accuracy")]
    rows[0]["nad"]["specific"] = Finding(True, 0.7, "")
    rows[1]["nad"]["specific"] = Finding(False, 0.5, "")
    text = verdict(rows, "accuracy")
    assert "(1 of 1 measurable betas)" in text and "not measurable at beta 0.5, where the sub-architectures are not" in text


def test_a_class_unit_effect_has_its_interval_around_it():
    from nadkit.sparsity import effects

    rows = [_row(0.3, 0.8, [0.6 + 0.01 * i for i in range(10)], [0.5] * 10)]
    nad = effects(rows).query("method == 'NAD' and finding == 'specific'").iloc[0]
    assert nad.low < nad.effect < nad.high and abs(nad.effect - 0.645) < 1e-9 and nad.high < 0.7


@pytest.mark.parametrize("args, says", [
    (["sweep"], "sweep takes networks"),
    (["sweep", "vgg16", "--instance", "3"], "takes 0, 1 or 2"),
    (["sweep", "vgg16", "--betas", "a"], "--betas numbers"),
    (["sweep", "vgg16", "--betas"], "takes a value"),
])
def test_the_sweep_command_refuses_bad_arguments_in_one_line(args, says):
    with pytest.raises(SystemExit) as e:
        book.main(args)
    assert says in str(e.value) and "\n" not in str(e.value)
