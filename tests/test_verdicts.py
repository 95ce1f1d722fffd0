"""The verdict writer's words follow the numbers: a finding that fails is not said to hold,
instances that disagree are named, a heuristic that does better makes the finding not NAD's own."""

import numpy as np
import pytest

from nadkit.findings import Finding
from nadbook.verdicts import Effect, answer, finds, network_verdicts

POINTS = ["conv1", "conv2", "conv3"]


def run(fewer_at=(), more_at=(), kappa=(-0.2, -0.2, -0.2), acc=(0.9,) * 10):
    fx = {"fewer": Finding(bool(fewer_at), min(kappa), "", list(fewer_at), [], list(kappa)),
          "more": Finding(bool(more_at), max(kappa), "", list(more_at), [], list(kappa)),
          "accuracy": Finding(True, float(np.mean(acc)), "", values=list(acc))}
    return fx


def test_a_finding_that_holds_is_said_to_hold_with_its_points_and_effect():
    v = network_verdicts("net", POINTS, [run([3]), run([3]), run([3])])["fewer"]
    assert v.status == "holds" and v.points == ["conv3"]
    assert "holds (3 of 3 instances) at conv3" in v.sentence() and "-0.20" in v.sentence()


def test_a_finding_that_fails_is_not_said_to_hold():
    v = network_verdicts("net", POINTS, [run([3]), run(), run()])["fewer"]
    assert v.status == "not shown"
    assert ": not shown (" in v.sentence() and "holds (" not in v.sentence()


def test_instances_that_disagree_are_named():
    runs = [run([3]), run([3]), run(more_at=[3], kappa=(0.2, 0.2, 0.2))]
    v = network_verdicts("net", POINTS, runs)["fewer"]
    assert v.status == "not shown" and v.inconsistent == ["conv3"] and not v.points
    assert "opposite directions at conv3" in v.sentence() and "holds" not in v.sentence()


@pytest.mark.slow
def test_a_better_heuristic_makes_it_not_nads_own():
    nad = [run(acc=tuple(0.5 + 0.01 * i for i in range(10)))] * 3
    better = [run(acc=tuple(0.7 + 0.01 * i for i in range(10)))] * 3
    worse = [run(acc=tuple(0.3 + 0.01 * i for i in range(10)))] * 3
    v = network_verdicts("net", POINTS, nad, {"good heuristic": better, "bad heuristic": worse})["accuracy"]
    assert v.rival == "good heuristic" and v.own is False and "not NAD's own" in v.sentence()
    v = network_verdicts("net", POINTS, better, {"bad heuristic": worse})["accuracy"]
    assert v.own is True and "NAD's own" in v.sentence() and "not NAD's own" not in v.sentence()
    # a rival identical on every class: nothing to test, not a "no"
    same = network_verdicts("net", POINTS, nad, {"copy": nad})["accuracy"]
    assert same.own is None and "fewer than 5 classes differ" in same.own_note
    # one heuristic that beats NAD settles it, whatever an untestable one says
    mixed = network_verdicts("net", POINTS, nad, {"copy": nad, "good heuristic": better})["accuracy"]
    assert mixed.own is False and "against good heuristic" in mixed.own_note
    # with the instance as the unit, three instances cannot make it significant
    f = network_verdicts("net", POINTS, [run([3])] * 3, {"h": [run([3], kappa=(0, 0, -0.1))] * 3})["fewer"]
    assert f.own is None and "cannot be tested here" in f.sentence()


def test_the_answer_changes_with_the_findings():
    holds = {"a": network_verdicts("a", POINTS, [run([3])] * 3)}
    fails = {"a": network_verdicts("a", POINTS, [run()] * 3)}
    assert "classes share fewer channels than chance* (1 of 1)" in answer(holds, ["fewer"])
    assert answer(fails, ["fewer"]).startswith("None of the findings tested")


def test_an_effect_interval_is_over_its_units_and_stays_in_its_range():
    # over classes: a bootstrap interval; over three instances: none (a t interval with 2 degrees
    # of freedom gave kappa +0.34 [-2.2, +2.9], outside kappa's range)
    e = Effect.over([1.0, 2.0, 3.0, 2.5, 1.5], "classes")
    assert e.low < 2.0 < e.high and e.n == 5
    text = Effect.over([0.1, 0.3, 0.6]).text()
    assert text == "+0.33 (3 instances)" and "[" not in text  # the mean, no interval
    assert Effect.over([1.0]).text() == "+1.0 (1 instance)"
    bounded = Effect.over([0.5, 0.5, 0.5, 0.99, 1.0, 1.0], "classes", (0.0, 1.0))
    assert 0.0 <= bounded.low and bounded.high <= 1.0


def test_what_a_chapter_finds_follows_the_verdicts():
    held = {"a": network_verdicts("a", POINTS, [run([3])] * 3), "b": network_verdicts("b", POINTS, [run()] * 3)}
    text = finds(held, ["fewer"])
    assert "holds on a (" in text and "conv3" in text and "not shown on b" in text
    failed = {"a": network_verdicts("a", POINTS, [run([3]), run(), run()])}
    assert "holds" not in finds(failed, ["fewer"]) and "not shown on a" in finds(failed, ["fewer"])
    split = {"a": network_verdicts("a", POINTS, [run([3]), run([3]), run(more_at=[3], kappa=(0.2,) * 3)])}
    assert "not shown on a (opposite ways at conv3)" in finds(split, ["fewer"])


def hit_run(by_class, gap=(0.1, 0.1, 0.1)):
    return {"hit": Finding(True, max(gap), "", [1, 2, 3], [], list(gap), by_class=list(by_class))}


def test_the_hit_rate_is_nads_own_where_it_wins_class_by_class_on_two_instances():
    ahead = [hit_run([0.5 + 0.01 * c for c in range(10)])] * 3
    level = [hit_run([0.4 + 0.01 * c for c in range(10)])] * 3
    assert network_verdicts("net", POINTS, ahead, {"h": level})["hit"].own is True
    v = network_verdicts("net", POINTS, level, {"h": ahead})["hit"]
    assert v.own is False and "Wilcoxon over classes" in v.own_note
    # four classes: Wilcoxon's smallest p is 1/16, so nothing can be shown: not testable
    four = network_verdicts("net", POINTS, [hit_run([0.5, 0.6, 0.7, 0.8])] * 3,
                            {"h": [hit_run([0.4, 0.5, 0.6, 0.7])] * 3})["hit"]
    assert four.own is None and "fewer than 5 classes differ" in four.own_note
    assert "not testable on net: fewer than 5 classes differ" in finds({"net": {"hit": four}}, ["hit"])
    assert "on 1 fewer than 5 classes differ" in answer({"net": {"hit": four}}, ["hit"])
    # without per-class hit rates the instance is the unit: not testable with three
    bare = network_verdicts("net", POINTS, [hit_run([])] * 3, {"h": [hit_run([], gap=(0, 0, 0))] * 3})["hit"]
    assert bare.own is None and "cannot reach p < 0.05" in bare.own_note


def mis_run(matrix, mis, holds=True):
    f = Finding(holds, 0.02, "", matrix=np.asarray(matrix).tolist(), misjudged_as=np.asarray(mis).tolist())
    return {"misjudged beyond chance": f}


def test_misjudged_is_nads_own_only_where_its_similarities_track_the_mistakes_more_pair_by_pair():
    rng = np.random.default_rng(0)
    k = 10
    mis = np.zeros((k, k), dtype=bool)
    for c in range(k):  # each class mistaken for its neighbour
        mis[c, (c + 1) % k] = True
    base = rng.random((k, k))
    base = (base + base.T) / 2
    tracking = base + 0.5 * (mis | mis.T)
    key = "misjudged beyond chance"
    v = network_verdicts("net", POINTS, [mis_run(tracking, mis)] * 3, {"h": [mis_run(base, mis)] * 3})[key]
    assert v.own is True and "QAP over classes" in v.own_note
    v = network_verdicts("net", POINTS, [mis_run(base, mis)] * 3, {"h": [mis_run(tracking, mis)] * 3})[key]
    assert v.own is False and "behind on 3 of 3" in v.own_note and v.outdone
    assert "(significantly better on net)" in finds({"net": {key: v}}, [key])
    assert "as well or better (significantly better on 1)" in answer({"net": {key: v}}, [key])
    # the same similarities (a heuristic that picked NAD's channels): nothing to test
    same = network_verdicts("net", POINTS, [mis_run(base, mis)] * 3, {"h": [mis_run(base, mis)] * 3})[key]
    assert same.own is None and "do not differ" in same.own_note
    assert "not testable on net: the similarities do not differ" in finds({"net": {key: same}}, [key])
    # a finding that does not hold is compared with no rule (NAD's own says nothing there, whatever
    # the test found) and is not counted among the cells a heuristic does as well on
    lost = network_verdicts("net", POINTS, [mis_run(base, mis, False)] * 3, {"h": [mis_run(tracking, mis)] * 3})
    assert lost[key].status != "holds" and lost[key].own is None and "behind on 3 of 3" in lost[key].own_note
    assert "a heuristic does as well" not in answer({"net": lost}, [key])


def test_overlap_is_nads_own_only_where_swapping_classes_sets_says_so_on_two_instances():
    """The overlap findings compared on the class as unit (``Finding.nad_swap``, NAD's sets
    against the heuristic's, classes swapped): ahead on 2 of 3 and behind on none is NAD's own,
    behind is "no" (significantly better), the same sets are not testable, and without the
    swap test three instances cannot test it."""
    def rival(swap):
        r = run([3], kappa=(-0.1, -0.1, -0.1))
        r["fewer"].nad_swap = list(swap)
        return r

    ahead, behind, same = [0.001, 0.999, 1 / 1024], [0.999, 0.001, 1 / 1024], [np.nan, np.nan, 1.0]
    nad = [run([3])] * 3
    v = network_verdicts("net", POINTS, nad, {"h": [rival(ahead), rival(ahead), rival([0.5, 0.5, 1 / 1024])]})
    assert v["fewer"].own is True and "ahead on 2, behind on 0 of 3 instances, swapping classes' sets" in \
        v["fewer"].own_note
    v = network_verdicts("net", POINTS, nad, {"h": [rival(ahead), rival(ahead), rival(behind)]})["fewer"]
    assert v.own is False  # one instance the other way
    v = network_verdicts("net", POINTS, nad, {"h": [rival(behind)] * 3})["fewer"]
    assert v.own is False and v.outdone and "(significantly better on net)" in finds({"net": {"fewer": v}}, ["fewer"])
    v = network_verdicts("net", POINTS, nad, {"h": [rival(same)] * 3})["fewer"]
    assert v.own is None and "not testable on net: the overlap does not differ" in finds({"net": {"fewer": v}}, ["fewer"])
    plain = network_verdicts("net", POINTS, nad, {"h": [run([3], kappa=(-0.1,) * 3)] * 3})["fewer"]
    assert plain.own is None and "cannot reach p < 0.05" in plain.own_note


def test_overlap_is_nads_own_by_one_test_pooled_over_instances():
    """With each instance's class-swap distribution (``Finding.nad_swap_dist``) NAD's own is ONE
    test over the instances: a planted difference on every instance is NAD's own, the mirror image
    is "a simple rule better", and differences tied at one class per instance (smallest attainable
    p 1/8) cannot be tested here."""
    from nadbook.verdicts import CANNOT, HOLDS_BETTER

    rng = np.random.default_rng(0)
    wide = np.concatenate([[1.0], rng.normal(0, 0.2, 1023)])  # the observed difference far out
    tied = np.array([1.0, -1.0] * 512)  # one class decides: half the swaps tie at the largest

    def rival(dist):
        r = run([3], kappa=(-0.1, -0.1, -0.1))
        r["fewer"].nad_swap_dist = list(dist)
        r["fewer"].nad_swap = [0.5, 0.5, 1 / 1024]
        return r

    nad = [run([3])] * 3
    v = network_verdicts("net", POINTS, nad, {"h": [rival(wide)] * 3})["fewer"]
    assert v.own is True and "pooled class swaps over 3 instances" in v.own_note
    v = network_verdicts("net", POINTS, nad, {"h": [rival(-wide)] * 3})["fewer"]
    assert v.own is False and v.outdone and v.word == HOLDS_BETTER
    v = network_verdicts("net", POINTS, nad, {"h": [rival(tied)] * 3})["fewer"]
    assert v.own is None and "cannot reach 0.05" in v.own_note and CANNOT in v.sentence()


def test_status_words_are_one_set_and_the_smallest_effects_are_stated():
    from nadbook.verdicts import EFFECTS, NEGLIGIBLE, STATUSES, smallest_effects

    assert STATUSES == ("holds", "holds, a simple rule as good", "holds, a simple rule better", "negligible",
                        "not shown", "cannot be tested here")
    words = smallest_effects()
    assert "balanced accuracy at least 0.6" in words and "kappa at most -0.1" in words
    assert EFFECTS["specific"][3] == 0.6
    # significant on every instance but below kappa 0.1: negligible, never "holds"
    tiny = network_verdicts("net", POINTS, [run([3], kappa=(-0.02,) * 3)] * 3)["fewer"]
    assert tiny.status == NEGLIGIBLE and "negligible on net" in finds({"net": {"fewer": tiny}}, ["fewer"])
    big = network_verdicts("net", POINTS, [run([3])] * 3)["fewer"]
    assert big.status == "holds" and big.word == "holds"
    # a class-unit effect whose interval over classes includes its null is not shown
    mixed = network_verdicts("net", POINTS, [run(acc=(0.3, -0.3, 0.25, -0.25, 0.2, -0.2, 0.1, -0.1, 0.05, 0.06))] * 3)
    assert mixed["accuracy"].status == "not shown"


def test_the_power_table_reads_planted_effect_to_rejection_rate():
    from nadbook.verdicts import power_table

    rows = [{"planted core": 0, "share of set": 0.0, "difference per instance": 0.0, "rejection rate": 0.05,
             "replicates": 100},
            {"planted core": 4, "share of set": 0.25, "difference per instance": 0.11, "rejection rate": 1.0,
             "replicates": 100}]
    text = power_table(rows)
    assert "| 0 (0.00) | 0 | 0.05 (100 replicates) |" in text and "| 4 (0.25) | +0.11 | 1.00" in text


def test_the_first_screen_says_each_category_in_plain_words_and_counts_what_the_verdicts_say():
    """``lead`` and ``grid`` from planted verdicts: every category shows in the grid with its
    colour, the answer counts them, stays short and speaks without the book's jargon."""
    from nadbook.verdicts import (CANNOT, CATEGORIES, HOLDS, NOT_SHOWN, Effect, NetworkVerdict, category, grid,
                                  lead)

    def v(net, key, status, own=None, note=""):
        return NetworkVerdict(net, key, status, 3, 3, effect=Effect(0.3), rival="taylor", rival_effect=Effect(0.2),
                              own=own, own_note=note)

    found = {"a": {"more": v("a", "more", HOLDS, True), "hit": v("a", "hit", HOLDS, False, "behind on 2 of 3"),
                   "specific": v("a", "specific", NOT_SHOWN)},
             "b": {"more": v("b", "more", HOLDS, False), "hit": v("b", "hit", HOLDS, None),
                   "specific": v("b", "specific", CANNOT)}}
    keys = ["more", "hit", "specific"]
    cats = {category(x) for f in found.values() for x in f.values()}
    assert cats == {"better", "rule better", "no", "as good", "untested", "cannot"}
    html = grid(found, keys)
    for c in cats:
        assert CATEGORIES[c][0] in html
    assert html.count("<tr>") == 1 + len(keys) and 'href="06_where.html"' in html
    text = lead(found, keys, "")
    assert "2 of the paper's 3 findings" in text  # more and hit hold on both networks
    assert "as good in 1 and better in 1; NAD beats every such rule in 1 (1 cannot be tested)" in text
    assert "specific to their class on 0 of 2 networks" in text
    assert len(text.split()) <= 130
    for jargon in ("NAD's own", "kept share", "Holm", "class as unit"):
        assert jargon not in text
