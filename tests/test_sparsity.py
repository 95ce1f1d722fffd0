"""The sparsity sweep (issue 23), in the smoke profile: each beta's run, its collapse and its
findings for NAD, every heuristic and random channels at NAD's counts."""

from types import SimpleNamespace

import pytest

from nadbook import book, sparsity


@pytest.fixture()
def smoke(monkeypatch):
    monkeypatch.setenv("NADKIT_PROFILE", "smoke")
    monkeypatch.setenv("NADKIT_QUIET", "1")


@pytest.mark.slow
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
        by_class = r["nad"]["hit"].by_class  # NAD's and each heuristic's hit rate per class
        assert len(by_class) == 4 and all(len(f["hit"].by_class) == 4 for f in r["rivals"].values())


def _row(beta, kept, nad, rival, empty=0.0, key="specific"):
    from nadkit.findings import Finding

    def found(values):
        return {key: Finding(True, float(sum(values) / len(values)), "", values=list(values))}
    return {"beta": beta, "kept": kept, "nad": found(nad), "rivals": {"taylor": found(rival)},
            "random": {}, "empty class-points": empty, "top answer share": 0.1}


def test_the_sweep_verdict_follows_the_numbers():
    from nadbook.sparsity import verdict

    ahead = [0.9 + 0.001 * i for i in range(10)]
    level = [0.7 + 0.001 * i for i in range(10)]
    rows = [_row(0.3, 0.9, level, level), _row(0.5, 0.5, ahead, level), _row(0.6, 0.3, ahead, level),
            _row(1.0, 0.1, ahead, level, empty=0.8)]
    text = verdict(rows, "specific")
    assert "holds at kept share 0.30-0.90 (3 of 3 measurable betas)" in text
    assert "NAD's own" in text and "at kept share 0.30-0.50" in text and "not measurable at beta 1" in text
    behind = [_row(0.5, 0.5, level, ahead), _row(0.6, 0.3, level, ahead)]
    assert "NAD's own at none of the betas where that can be tested" in verdict(behind, "specific")
    uneven = [_row(0.5, 0.5, [3], [2], key="structure"), _row(0.6, 0.3, [1], [2], key="structure")]
    uneven[0]["rivals"]["taylor"]["structure"].nad_swap = [0.001, 0.999, 1 / 1024]  # the spread, class swaps
    uneven[1]["rivals"]["taylor"]["structure"].nad_swap = [0.4, 0.6, 1 / 1024]
    assert "NAD's own at kept share 0.50 (tested on the class" in verdict(uneven, "structure")
    more = [_row(0.5, 0.5, [0.1], [0.05], key="more"), _row(0.6, 0.3, [0.02], [0.05], key="more")]
    more[0]["rivals"]["taylor"]["more"].nad_swap = [0.001, 0.999, 1 / 1024]  # class swaps: NAD ahead
    more[1]["rivals"]["taylor"]["more"].nad_swap = [0.999, 0.001, 1 / 1024]  # and behind
    assert "NAD's own at kept share 0.50 (tested on the class" in verdict(more, "more")
    for r in more:  # the sets do not differ
        r["rivals"]["taylor"]["more"].nad_swap = [float("nan"), float("nan"), 1.0]
    assert "cannot be tested here (the overlap does not differ" in verdict(more, "more")


def _hit_row(beta, nad, rival, kept_per_point=(0.5, 1.0)):
    """A beta whose hit rates are given class by class at two points, the second the whole layer
    (left out of each class's mean, as ``findings.of_run`` leaves it)."""
    import numpy as np

    from nadkit.findings import Finding, _mean_over

    testable = np.array([0 < k < 1 for k in kept_per_point])
    row = _row(beta, 0.5, [0.1], [0.05], key="hit")
    row["nad"]["hit"] = Finding(True, 0.1, "", by_class=_mean_over(nad, testable))
    row["rivals"]["taylor"]["hit"] = Finding(True, 0.05, "", by_class=_mean_over(rival, testable))
    return row


def test_hit_rate_is_nads_own_only_where_it_wins_class_by_class_at_points_that_can_differ():
    from nadbook.sparsity import verdict

    level = [[0.3 + 0.01 * c, 0.9] for c in range(10)]
    ahead = [[0.4 + 0.01 * c, 0.9] for c in range(10)]
    won = [_hit_row(0.5, ahead, level), _hit_row(0.6, ahead, level)]
    assert "NAD's own at kept share 0.50 (tested on the class" in verdict(won, "hit")
    lost = [_hit_row(0.5, level, ahead), _hit_row(0.6, level, ahead)]
    assert "at none of the betas where that can be tested" in verdict(lost, "hit")
    # ahead only at the point that keeps the whole layer: nothing there can differ
    whole = [[0.3 + 0.01 * c, 1.0] for c in range(10)]
    same = [_hit_row(0.5, whole, level), _hit_row(0.6, whole, level)]
    assert "cannot be tested here" in verdict(same, "hit")
    # four classes: Wilcoxon's smallest p, 1/16, cannot pass 0.05
    four = [_hit_row(0.5, ahead[:4], level[:4])]
    assert "cannot be tested here" in verdict(four, "hit") and "at none of" not in verdict(four, "hit")


def test_misjudged_beyond_chance_is_nads_own_along_the_sweep_only_where_qap_says_so():
    import numpy as np

    from nadkit.findings import Finding
    from nadbook.sparsity import verdict

    key = "misjudged beyond chance"
    k = 10
    mis = np.zeros((k, k), dtype=bool)
    mis[np.arange(k), (np.arange(k) + 1) % k] = True
    rng = np.random.default_rng(0)
    base = rng.random((k, k))
    base = (base + base.T) / 2
    tracking = base + 0.5 * (mis | mis.T)

    def row(beta, nad, rival):
        r = _row(beta, 0.5, [0.1], [0.05], key=key)
        r["nad"][key] = Finding(True, 0.02, "", matrix=nad.tolist(), misjudged_as=mis.tolist())
        r["rivals"]["taylor"][key] = Finding(True, 0.01, "", matrix=rival.tolist(), misjudged_as=mis.tolist())
        return r

    assert "NAD's own at kept share 0.50" in verdict([row(0.5, tracking, base), row(0.6, tracking, base)], key)
    assert "at none of the betas where that can be tested" in verdict([row(0.5, base, tracking), row(0.6, base, tracking)], key)
    assert "the similarities do not differ" in verdict([row(0.5, base, base)], key)


def test_the_headline_says_where_nad_is_its_own_or_that_it_is_nowhere():
    from nadbook.sparsity import headline

    ahead = [0.9 + 0.001 * i for i in range(10)]
    level = [0.7 + 0.001 * i for i in range(10)]
    won = {"vgg16": [_row(0.3, 0.9, level, level), _row(0.5, 0.5, ahead, level)]}
    assert "for *sub-architectures are specific to their class* on vgg16 at kept share 0.50" in headline(won)
    lost = {"vgg16": [_row(0.3, 0.9, level, level), _row(0.5, 0.5, level, ahead)]}
    assert "at none of the betas where that can be tested" in headline(lost) and "vgg16 (2 of 9 betas)" in headline(lost)
    for r in lost["vgg16"]:
        r["nad"]["specific"].holds = False
    assert "none of the findings tested on the class holds" in headline(lost)


def test_keeping_the_class_does_not_count_where_the_answer_is_constant():
    from nadkit.findings import Finding
    from nadbook.sparsity import verdict

    rows = [_row(0.3, 0.8, [0.9] * 10, [0.5] * 10, key="accuracy"), _row(0.5, 0.5, [0.9] * 10, [0.5] * 10, key="accuracy")]
    rows[0]["nad"]["specific"] = Finding(True, 0.7, "")
    rows[1]["nad"]["specific"] = Finding(False, 0.5, "")
    text = verdict(rows, "accuracy")
    assert "(1 of 1 measurable betas)" in text and "not measurable at beta 0.5, where the sub-architectures are not" in text


def test_a_class_unit_effect_has_its_interval_around_it():
    from nadbook.sparsity import effects

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


@pytest.mark.slow
def test_the_chosen_beta_is_judged_over_three_instances_as_the_cards_are(smoke):
    """In the smoke profile the chapter judges the first beta, whose instances' runs the other
    chapters make: the verdicts count the profile's instances, name the best heuristic, and the
    table carries every finding."""
    from nadbook.verdicts import table

    s = book.Settings.of(archs="vgg16")
    betas = sparsity.replicated_betas(["vgg16", "resnet50"])
    assert betas == {"vgg16": (sparsity.BETAS["vgg16"][0],)}
    rep = sparsity.replication("vgg16", betas["vgg16"][0], s, progress=False, compute=True)
    assert len(rep["kept"]) == len(s.instances) == 2 and all(0 < k <= 1 for k in rep["kept"])
    found = rep["verdicts"]
    assert {v.instances for v in found.values()} == {2}  # the smoke profile's instances
    assert found["more"].rival in book.BASELINE_METHODS
    text = table({"vgg16": found}, ["more", "fewer", "hit"])
    assert text.count("\n") == 4 and "NAD's own" in text
    by_class = rep["class unit"]["hit"]  # four classes: Wilcoxon cannot reach 0.05
    said = sparsity.class_unit_sentence({"vgg16 at beta 0.3": rep})
    assert by_class["own"] is None and len(by_class["p"]) == 2
    assert ("not testable" in said) != (found["hit"].status != "holds")  # or: the finding does not hold
    assert sparsity.replication("vgg16", 0.123, s, progress=False) is None  # not run: nothing


@pytest.mark.slow
def test_the_chapters_give_one_verdict_per_finding_network_and_setting(smoke):
    """Chapters 01, 05, 06, 07 and 09 read ``book.verdicts`` (the card's beta over the trained
    instances); chapter 05c judges its chosen betas with ``sparsity.replication``, and where that
    beta is the card's (the smoke profile's, and in the full profile resnet50's and darts's) the
    setting is the same: so must every finding's verdict be, its status and NAD against the rules."""
    s = book.Settings.of(archs="vgg16")
    (beta,) = sparsity.replicated_betas(["vgg16"])["vgg16"]
    assert beta == book.model_card("vgg16")["nad"]["beta"]  # the card's, in the smoke profile
    rep = sparsity.replication("vgg16", beta, s, progress=False, compute=True)["verdicts"]
    card = book.verdicts("vgg16", s, progress=False)
    assert set(rep) == set(card)
    for key in card:
        assert (rep[key].status, rep[key].own) == (card[key].status, card[key].own), key


def test_the_hit_rate_is_confirmed_class_by_class_only_on_the_instances_it_was_not_chosen_on():
    level = [[0.3 + 0.01 * c, 0.9] for c in range(10)]
    ahead = [[0.4 + 0.01 * c, 0.9] for c in range(10)]
    behind = [[0.2 + 0.01 * c, 0.9] for c in range(10)]
    own = sparsity.own_on_classes
    mixed = [[0.3 + 0.01 * c + (0.05 if c % 2 else -0.05), 0.9] for c in range(10)]
    chosen_only = [_hit_row(0.6, ahead, level), _hit_row(0.6, mixed, level), _hit_row(0.6, ahead, level)]
    c = own(chosen_only, "hit", [0, 1, 2])
    assert c["own"] is False and c["p"][0] < 0.01 and not any(c["other way"])
    holds = {"hit": SimpleNamespace(status="holds")}
    assert "not confirmed" in sparsity.class_unit_sentence({"vgg16 at beta 0.6": {"class unit": {"hit": c},
                                                                                 "verdicts": holds}})
    absent = {"hit": SimpleNamespace(status="not shown at this scale")}
    assert "does not arise" in sparsity.class_unit_sentence({"vgg16 at beta 0.6": {"class unit": {"hit": c},
                                                                                   "verdicts": absent}})
    confirmed = own([_hit_row(0.6, level, level), _hit_row(0.6, ahead, level), _hit_row(0.6, ahead, level)],
                    "hit", [0, 1, 2])
    assert confirmed["own"] is True
    same = own([_hit_row(0.6, ahead, level), _hit_row(0.6, level, level), _hit_row(0.6, ahead, level)],
               "hit", [0, 1, 2])
    assert same["own"] is None  # no class differs on a confirming instance: not testable, not "not own"
    against = own([_hit_row(0.6, ahead, level), _hit_row(0.6, ahead, level), _hit_row(0.6, behind, level)],
                  "hit", [0, 1, 2])
    assert against["own"] is False and against["other way"] == [False, False, True]


def test_the_most_informative_beta_is_where_nad_leads_on_most_findings():
    from nadkit.findings import Finding

    def run(beta, kept, nad, rival, empty=0.0, specific=True, constant=0.0):
        found = lambda v: {"hit": Finding(True, v, ""), "more": Finding(True, v, "")}  # noqa: E731
        return {"beta": beta, "kept": kept, "nad": found(nad) | {"specific": Finding(specific, 0.7, "")},
                "rivals": {"taylor": found(rival)}, "random": {}, "empty class-points": empty,
                "top answer share": 0.1, "constant sub-architectures": constant}

    rows = [run(0.3, 0.8, 0.1, 0.2), run(0.6, 0.3, 0.3, 0.2), run(0.9, 0.1, 0.4, 0.1, empty=0.9)]
    assert sparsity.informative(rows)["beta"] == 0.6  # 0.9 leads too, but collapsed
    assert sparsity.ahead(rows[1]) == ["more", "hit"]
    assert sparsity.informative(rows[:1]) is None
    # a beta just under the collapse thresholds (49% of class-points empty, or not specific, or
    # most sub-architectures answering constantly) is never chosen, however far NAD leads there
    for bad in (run(1.0, 0.05, 0.9, 0.1, empty=0.494), run(1.0, 0.05, 0.9, 0.1, specific=False),
                run(1.0, 0.05, 0.9, 0.1, constant=0.6)):
        assert sparsity.informative(rows[:2] + [bad])["beta"] == 0.6
        assert sparsity.sparsest_specific(rows[:2] + [bad])["beta"] == 0.6



def test_the_sparsest_specific_beta_keeps_a_channel_everywhere_and_names_its_class():
    from nadkit.findings import Finding

    def run(beta, kept, specific, empty=0.0):
        return {"beta": beta, "kept": kept, "nad": {"specific": Finding(specific, 0.6 if specific else 0.5, "")},
                "rivals": {}, "random": {}, "empty class-points": empty, "top answer share": 0.1}

    rows = [run(0.3, 0.9, True), run(0.6, 0.7, True), run(0.9, 0.5, True, empty=0.01), run(1.2, 0.3, False)]
    assert sparsity.sparsest_specific(rows)["beta"] == 0.6  # 0.9 is sparser but empties a class-point
    assert sparsity.sparsest_specific([rows[3]]) is None

def test_the_sweep_figure_carries_every_method_and_marks_where_each_holds():
    from nadbook import vega

    data = [{"network": "vgg16", "finding": "hit", "method": m, "beta": 0.3, "kept": 0.8,
             "effect": 0.1, "low": float("nan"), "high": None, "holds": m == "NAD", "at": "card's beta"}
            for m in ("NAD", "taylor", "random")]
    fig = vega.against_kept(data, "title")
    values = fig.spec["data"]["values"]
    # NaN is no interval, not an invalid JSON number: a band of no width at the effect
    assert [(v["low"], v["high"]) for v in values] == [(0.1, 0.1)] * 3
    assert "NaN" not in fig.html() and "vgg16" in fig.html()
    assert {p["name"] for p in fig.spec["params"]} == {"network", "finding"}
    # every symbol's shape is one Vega draws by name or an SVG path (an unknown name breaks the page)
    named = {"circle", "square", "cross", "diamond", "triangle-up", "triangle-down", "triangle-left",
             "triangle-right", "triangle", "arrow", "wedge", "stroke"}
    shapes = [layer["mark"].get("shape") for layer in fig.spec["layer"]]
    shapes += fig.spec["layer"][2]["encoding"]["shape"]["scale"]["range"]
    assert all(s is None or s in named or s.startswith("M") for s in shapes)


def test_the_papers_objective_is_recorded_only_when_chosen_and_changes_the_key():
    from dataclasses import replace

    s = book.Settings.of(archs="vgg16")
    official = s.run_config("vgg16")
    paper = replace(s, objective="paper").run_config("vgg16")
    assert "objective" not in official  # the shipped runs' keys do not move
    assert paper["objective"] == "paper" and book.run_dir(paper) != book.run_dir(official)


def test_the_objective_sentence_says_whether_specificity_changes():
    from nadkit.findings import Finding

    def run(beta, kept, specific):
        return {"beta": beta, "kept": kept, "empty class-points": 0.0, "top answer share": 0.1,
                "nad": {"specific": Finding(specific, 0.7 if specific else 0.5, "")}}

    same = sparsity.objective_sentence("vgg16", {"official": [run(0.6, 0.3, False)], "paper": [run(0.6, 0.5, False)]})
    assert "does not change" in same and "keeps 0.50" in same and "keeps 0.30" in same
    moved = sparsity.objective_sentence("vgg16", {"official": [run(0.6, 0.3, False)], "paper": [run(0.6, 0.5, True)]})
    assert "changes with the objective at beta 0.6" in moved
    assert "not run" in sparsity.objective_sentence("vgg16", {"official": [], "paper": []})
    sweep = [run(0.3, 0.8, False), run(0.6, 0.3, False)]
    near = sparsity.objective_sentence("vgg16", {"official": [run(0.6, 0.3, False)], "paper": [run(0.6, 0.75, True)]},
                                       sweep)
    assert "authors' at beta 0.3 (kept 0.80)" in near and "a different verdict" in near


def test_the_replicated_sentence_says_what_holds_on_three_instances_and_whose_it_is():
    from nadbook.verdicts import NetworkVerdict

    def rep(status, own, measurable=True, specific="not shown at this scale"):
        v = {"hit": NetworkVerdict("vgg16", "hit", status, 3, 3, own=own),
             "accuracy": NetworkVerdict("vgg16", "accuracy", "holds", 3, 3, own=True),
             "specific": NetworkVerdict("vgg16", "specific", specific, 0, 3)}
        return {"verdicts": v, "measurable": [True, True, measurable], "kept": [0.3] * 3}

    text = sparsity.replicated_sentence({"vgg16 at beta 0.6": rep("holds", True)})
    assert "on vgg16 at beta 0.6, *hit rate above random sub-architectures* hold" in text
    assert "NAD's own" in text and "keep their class" not in text  # kept trivially: not specific
    assert "does as well" in sparsity.replicated_sentence({"x": rep("holds", False)})
    assert "Not testable as NAD's own" in sparsity.replicated_sentence({"x": rep("holds", None)})
    short = sparsity.replicated_sentence({"x": rep("holds", True)}, short=True)
    assert "findings hold in 1 network-finding cells" in short and "NAD's own: 1" in short
    assert "no finding holds" in sparsity.replicated_sentence({"x": rep("holds", True, measurable=False)})
    assert "yet" in sparsity.replicated_sentence({})


def test_more_on_vgg16_cannot_be_tested_where_ties_bound_its_smallest_p():
    """Issue 34: vgg16's *more* against mean activation has attainable smallest p 0.5, 0.125,
    0.0625, 0.0625, 0.0625 at betas 0.4-0.7 (ties of the statistic over the 2^10 class swaps): no
    beta can reach Holm's threshold, so whether it is NAD's own cannot be tested here (never "at
    no sparsity"); the same p with 1/1024 floors is NAD's own, and a heuristic ahead at a
    reachable floor is not."""
    from nadbook.sparsity import nads_own, reachable_family, verdict

    floors = [0.5, 0.125, 0.0625, 0.0625, 0.0625]
    betas = [0.4, 0.45, 0.5, 0.6, 0.7]

    def rows(swaps):
        out = [_row(b, 0.8 - 0.1 * i, [0.3], [0.2], key="more") for i, b in enumerate(betas)]
        for r, t in zip(out, swaps):
            r["rivals"]["taylor"]["more"].nad_swap = list(t)
        return out

    tied = rows([(f, 1.0, f) for f in floors])
    assert reachable_family(floors) == set() and nads_own(tied, "more") == {}
    text = verdict(tied, "more")
    assert "cannot be tested here" in text and "at none of" not in text and "NAD's own at" not in text
    free = rows([(0.001, 0.999, 1 / 1024)] * 5)
    assert all(own for own, _ in nads_own(free, "more").values()) and "NAD's own at kept share" in verdict(free, "more")
    behind = rows([(0.999, 0.001, 1 / 1024)] * 5)
    assert not any(own for own, _ in nads_own(behind, "more").values())
    assert "NAD's own at none of the betas where that can be tested" in verdict(behind, "more")
    # a floor that only a smaller family can reach: 0.02 stays once the tied tests have left
    assert reachable_family([0.5, 0.02, 0.001]) == {1, 2} and reachable_family([0.02, 0.02, 0.02]) == set()
