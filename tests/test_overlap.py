"""Overlap against chance: the exact expectation, calibration of every test on null data, power on
planted structure, and QAP against a brute-force enumeration."""

from itertools import permutations

import numpy as np
import pytest
from scipy import stats

from nadkit import overlap
from nadkit.stats import dif, mis_relation, misjudgment_test, top_confusion_among_similar


def random_sets(rng, n, sizes):
    return np.stack([np.isin(np.arange(n), rng.choice(n, s, replace=False)) for s in sizes])


@pytest.mark.parametrize("a,b,n", [(5, 7, 20), (30, 60, 64), (1, 1, 10), (64, 10, 64), (0, 3, 8)])
def test_expected_jaccard_is_the_monte_carlo_mean(a, b, n):
    rng = np.random.default_rng(0)
    draws = [overlap.jaccard_rows(random_sets(rng, n, [a, b]))[0, 1] for _ in range(20_000)]
    assert overlap.expected_jaccard(a, b, n) == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / 140 + 1e-9)


def test_expected_jaccard_edge_cases_and_kappa():
    assert overlap.expected_jaccard(10, 10, 10) == 1.0      # both full: identical
    assert overlap.expected_jaccard(0, 0, 10) == 1.0        # both empty: identical, as jaccard_matrix says
    assert overlap.expected_jaccard(0, 4, 10) == 0.0
    assert np.isnan(overlap.kappa(1.0, 1.0))
    assert overlap.kappa(1.0, 0.3) == pytest.approx(1.0)
    assert overlap.kappa(0.3, 0.3) == pytest.approx(0.0)
    assert overlap.kappa(0.0, 0.5) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        overlap.expected_jaccard(11, 2, 10)


def test_hypergeometric_p_is_uniform_on_random_sets_and_sees_a_planted_overlap():
    rng = np.random.default_rng(1)
    n, a, b = 64, 20, 30
    ps = []
    for _ in range(2000):
        x = random_sets(rng, n, [a, b])
        ps.append(overlap.overlap_p(int((x[0] & x[1]).sum()), a, b, n, "greater"))
    # a discrete test is conservative: P(p <= alpha) <= alpha for every alpha
    for alpha in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(np.array(ps) <= alpha) <= alpha + 0.02
    assert overlap.overlap_p(18, a, b, n, "greater") < 1e-4   # planted: 18 of 20 shared
    assert overlap.overlap_p(0, a, b, n, "less") < 1e-3        # planted avoidance


def test_curveball_keeps_every_row_and_column_sum_and_mixes():
    rng = np.random.default_rng(2)
    x = rng.random((10, 40)) < np.linspace(0.1, 0.9, 40)
    y = overlap.curveball(x, 200, rng)
    assert (y.sum(1) == x.sum(1)).all() and (y.sum(0) == x.sum(0)).all()
    assert (y != x).mean() > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("null", ["uniform", "swap"])
def test_point_test_is_calibrated_on_null_data(null):
    """Matrices drawn from the null itself: the p-values are uniform (KS) and reject at about alpha."""
    rng = np.random.default_rng(3)
    ps = []
    pop = np.linspace(0.2, 0.9, 24) if null == "swap" else np.full(24, 0.5)
    for i in range(60):
        x = rng.random((6, 24)) < pop    # independent cells: exchangeable given both margins
        if null == "uniform":
            x = overlap.uniform_draw(x, rng)
        ps.append(overlap.point_test(x, null, draws=199, seed=i)["p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert np.mean(np.array(ps) < 0.05) <= 0.12


def test_point_tests_find_planted_structure_that_hubs_do_not_fake():
    rng = np.random.default_rng(4)
    # two groups of classes, each keeping its own half of the channels: class structure
    x = np.zeros((8, 40), dtype=bool)
    x[:4, :20] = rng.random((4, 20)) < 0.8
    x[4:, 20:] = rng.random((4, 20)) < 0.8
    assert overlap.point_test(x, "swap", draws=199)["p"] < 0.05
    # classes that avoid each other (disjoint sets): less overlap than random sets of those sizes
    disjoint = np.kron(np.eye(8, dtype=bool), np.ones((1, 5), dtype=bool))
    assert overlap.point_test(disjoint, "uniform", draws=199)["p"] < 0.05
    # hub channels kept by every class, the rest random: more overlap than uniform chance gives,
    # and no class structure beyond what the swap null (each channel's popularity kept) gives
    uniform, swap = [], []
    for i in range(20):
        hubs = np.zeros((8, 40), dtype=bool)
        hubs[:, :15] = True
        hubs[:, 15:] = rng.random((8, 25)) < 0.2
        uniform.append(overlap.point_test(hubs, "uniform", draws=99, seed=i)["p"])
        swap.append(overlap.point_test(hubs, "swap", draws=99, seed=i)["p"])
    assert np.mean(np.array(uniform) < 0.05) >= 0.9
    assert np.mean(np.array(swap) < 0.05) <= 0.15


def test_qap_equals_brute_force_enumeration_on_a_small_matrix():
    rng = np.random.default_rng(5)
    k = 6
    m = rng.random((k, k))
    sim = (m + m.T) / 2
    conf = rng.integers(0, 30, (k, k))
    mis = mis_relation(conf, list(range(k)), 0.05)
    stat = lambda s: dif(s, mis)  # noqa: E731
    observed = stat(sim)
    brute = np.mean([stat(sim[np.ix_(p, p)]) >= observed - 1e-12 for p in map(list, permutations(range(k)))])
    exact = overlap.qap_test(sim, stat, draws=9999)
    assert exact["exact"] and exact["p"] == pytest.approx(brute)
    sampled = overlap.qap_test(sim, stat, draws=700)   # 6! = 720 > 700: Monte Carlo
    assert not sampled["exact"] and sampled["p"] == pytest.approx(brute, abs=0.06)


def test_misjudgment_qap_is_calibrated_and_has_power():
    rng = np.random.default_rng(6)
    k = 10
    ps, planted = [], []
    for i in range(100):
        conf = rng.integers(5, 30, (k, k)) * (rng.random((k, k)) < 0.3)
        np.fill_diagonal(conf, 900)
        noise = rng.random((k, k))
        sim = (noise + noise.T) / 2
        ps.append(misjudgment_test(sim, conf, list(range(k)), 0.005, draws=199, seed=i)["p"])
        mis = mis_relation(conf, list(range(k)), 0.005)
        related = sim + 0.3 * (mis | mis.T)
        planted.append(misjudgment_test(related, conf, list(range(k)), 0.005, draws=199, seed=i)["p"])
    assert np.isfinite(ps).all() and np.isfinite(planted).all()
    assert np.mean(np.array(ps) < 0.05) <= 0.1
    assert np.mean(np.array(planted) < 0.05) >= 0.8


def test_chance_corrected_dif_removes_what_sizes_alone_give():
    """Classes that confuse each other keep more channels; their channels are random: the raw Dif
    is positive, the size part explains it and the chance-corrected Dif is about zero."""
    rng = np.random.default_rng(7)
    k, n = 10, 64
    conf = np.zeros((k, k), dtype=int)
    np.fill_diagonal(conf, 900)
    for a, b in [(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0)]:
        conf[a, b] = 50
    sizes = [56, 56, 56, 56, 12, 12, 12, 12, 12, 12]
    raw, delta, size_part = [], [], []
    for _ in range(30):
        x = random_sets(rng, n, sizes)
        c = overlap.chance(x)
        out = misjudgment_test(c["jaccard"], conf, list(range(k)), draws=99, expected=c["expected"])
        raw.append(out["dif"])
        delta.append(out["dif_delta"])
        size_part.append(out["dif_size"])
    assert np.mean(raw) > 0.3 and np.mean(size_part) == pytest.approx(np.mean(raw), abs=0.05)
    assert abs(np.mean(delta)) < 0.03


def test_fig5_with_the_class_as_unit():
    k = 10
    sim = np.eye(k)
    conf = np.eye(k, dtype=int) * 900
    for c in range(k):
        sim[c, (c + 1) % k] = sim[(c + 1) % k, c] = 0.9
        conf[c, (c + 1) % k] = 20
    out = top_confusion_among_similar(sim, conf, list(range(k)))
    assert out["hits"] == 10 and out["classes"] == 10 and out["p"] < 0.001
    assert out["chance"] == pytest.approx(3 / 9)


def test_holm_controls_the_family():
    assert overlap.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(overlap.holm([np.nan, 0.01])[0])
