import numpy as np
import pytest
import torch

from nadkit.stats import mean_interval, misjudgment_test, same_class_agreement, seed_agreement


def random_masks(classes=10, width=64, seed=0, keep=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(classes, width, generator=g) < keep


def test_interval_excludes_zero_only_for_a_real_shift():
    rng = np.random.default_rng(0)
    assert mean_interval(rng.normal(1.0, 0.5, 30)).holds
    assert not mean_interval(rng.normal(0.0, 0.5, 30)).holds
    # no spread: no interval, so nothing holds (a constant sample cannot support one)
    assert not mean_interval([0.2] * 10).holds
    assert mean_interval([0.2] * 10).interval() == "(no spread)"  # never "[+nan, +nan]"


def test_seed_agreement_against_chance():
    """The same masks from two seeds agree with kappa 1; two seeds that draw new random masks of
    the same sizes agree at chance (kappa about 0), however high their raw Jaccard."""
    classes = random_masks(keep=0.9)
    same = seed_agreement([[classes], [classes.clone()]])
    assert same["jaccard"].min() == 1.0 and np.nanmin(same["kappa"]) == 1.0
    assert (same_class_agreement([[classes], [classes.clone()]]) == 1.0).all()
    noise = seed_agreement([[random_masks(seed=s, keep=0.9)] for s in range(2)])
    assert noise["jaccard"].mean() > 0.75 and abs(np.nanmean(noise["kappa"])) < 0.15


def confusion_towards(pairs, classes=10):
    conf = torch.eye(classes, dtype=torch.long) * 900
    for a, b in pairs:
        conf[a, b] += 50
    return conf


def test_misjudgment_permutation_test_follows_the_similarity():
    pairs = [(c, (c + 1) % 10) for c in range(10)]
    conf = confusion_towards(pairs)
    sim = torch.full((10, 10), 0.3)
    for a, b in pairs:
        sim[a, b] = sim[b, a] = 0.6 + 0.01 * a   # confused classes are more similar
    sim.fill_diagonal_(1.0)
    similar = misjudgment_test(sim, conf, list(range(10)))
    assert similar["dif"] > 0 and similar["p"] < 0.01 and similar["low"] > 0
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(10, 10, generator=g)
    noise = (noise + noise.T) / 2
    unrelated = misjudgment_test(noise, conf, list(range(10)))
    assert unrelated["p"] > 0.05
    opposite = misjudgment_test(1 - sim, conf, list(range(10)))
    assert opposite["dif"] < 0 and opposite["p"] > 0.95


def test_dif_ahead_reads_the_difference_of_two_similarity_matrices_with_classes_permuted():
    from nadkit.stats import dif, dif_ahead

    rng = np.random.default_rng(1)
    k = 10
    mis = rng.random((k, k)) < 0.2
    np.fill_diagonal(mis, False)
    a, b = rng.random((k, k)), rng.random((k, k))
    a, b = (a + a.T) / 2, (b + b.T) / 2
    t = dif_ahead(a, b, mis)
    assert np.isclose(t["observed"], dif(a, mis) - dif(b, mis))  # Dif is linear
    assert t["p_greater"] > 0.05 and t["p_less"] > 0.05  # two unrelated matrices: no side
    planted = b + 0.3 * (mis | mis.T)
    assert dif_ahead(planted, b, mis)["p_greater"] < 0.001 and dif_ahead(b, planted, mis)["p_less"] < 0.001
    assert np.isnan(dif_ahead(b, b + 1e-9, mis)["p_greater"])  # below float resolution: nothing to test


def test_dif_ahead_is_exact_for_few_classes_and_says_how_small_its_p_can_be():
    from nadkit.stats import dif_ahead

    mis = np.zeros((4, 4), dtype=bool)
    mis[[0, 1, 2, 3], [1, 0, 3, 2]] = True
    base = np.arange(16, dtype=float).reshape(4, 4) / 16
    base = (base + base.T) / 2
    t = dif_ahead(base + 0.5 * mis, base, mis)
    assert t["p_greater"] * 24 == round(t["p_greater"] * 24)  # a count of orders
    # the planted pairing is among the best orders, but 8 of the 24 orders keep the two pairs
    # (swaps within and between them): the smallest p this test can give is 8/24, not 1/24
    assert t["p_greater"] == t["p_floor"] == pytest.approx(8 / 24)
    assert t["p_floor_less"] == pytest.approx(16 / 24)


def test_swap_ahead_moves_each_class_as_one_and_reads_the_overlap_of_chapter_01():
    """A shared core at one point makes NAD's classes overlap more than a rival's random sets of
    the same sizes: the class-swap test finds it at its smallest p, either way round; the
    difference is the one ``overlap.per_point`` gives; random against random finds nothing; the
    same sets are not testable (NaN)."""
    from nadkit.overlap import per_point
    from nadkit.stats import swap_ahead

    rng = np.random.default_rng(0)

    def sets(core=0):
        out = []
        for p in range(3):
            x = np.zeros((10, 64), dtype=bool)
            for i in range(10):
                c = core if p == 2 else 0
                x[i, :c] = True
                x[i, rng.choice(np.arange(c, 64), 16 - c, replace=False)] = True
            out.append(x)
        return out

    shared, plain = sets(core=10), sets()
    t = swap_ahead(shared, plain, "max")
    gap = max(per_point(shared)["similarity_kappa"]) - max(per_point(plain)["similarity_kappa"])
    assert t["observed"] == pytest.approx(gap) and t["p_greater"] == t["p_floor"] == 1 / 1024
    assert swap_ahead(plain, shared, "max")["p_less"] == 1 / 1024
    assert swap_ahead(shared, plain, "min")["p_greater"] > 0.05  # the core raises overlap, never lowers it
    nulls = [swap_ahead(sets(), sets(), "max", seed=i)["p_greater"] for i in range(5)]
    assert min(nulls) > 0.01
    assert np.isnan(swap_ahead(plain, plain, "max")["p_greater"])


def test_swap_ahead_reads_the_spread_of_overlap_over_class_pairs_of_the_uneven_finding():
    """Two blocks of classes, each sharing a core, spread the overlap unevenly over class pairs
    (close within a block, apart across): against random sets of the same sizes the class-swap
    test on the spread finds it at its smallest p either way round; the difference is the mean
    over points of the SD of the pairs' Jaccard (``overlap.pair_sd``); random against random
    finds nothing; the same sets are not testable."""
    from nadkit.overlap import jaccard_rows, pair_sd
    from nadkit.stats import swap_ahead

    rng = np.random.default_rng(1)

    def sets(blocks=False):
        out = []
        for _ in range(2):
            x = np.zeros((10, 64), dtype=bool)
            for i in range(10):
                core = np.arange(8) + (8 if i >= 5 else 0) if blocks else np.array([], dtype=int)
                x[i, core] = True
                rest = np.setdiff1d(np.arange(64), core)
                x[i, rng.choice(rest, 16 - len(core), replace=False)] = True
            out.append(x)
        return out

    blocks, plain = sets(blocks=True), sets()
    t = swap_ahead(blocks, plain, "spread")
    sd = lambda xs: np.mean([pair_sd(jaccard_rows(x)) for x in xs])  # noqa: E731
    assert t["observed"] == pytest.approx(sd(blocks) - sd(plain))
    assert t["p_greater"] == t["p_floor"] == 1 / 1024
    assert swap_ahead(plain, blocks, "spread")["p_less"] == 1 / 1024
    nulls = [swap_ahead(sets(), sets(), "spread")["p_greater"] for _ in range(5)]
    assert min(nulls) > 0.01
    assert np.isnan(swap_ahead(plain, plain, "spread")["p_greater"])
    with pytest.raises(ValueError, match="choose max, min or spread"):
        swap_ahead(plain, plain, "median")


def test_swap_ahead_says_its_smallest_p_from_the_ties_of_its_statistic():
    """Where NAD and the rival differ at one class only, every assignment that gives that class
    the same set gives the same statistic: the smallest p is 1/2, not 1/1024, and no threshold
    can be reached; where every class differs (a planted core at every class) it is 1/1024."""
    from nadkit.stats import swap_ahead

    rng = np.random.default_rng(3)
    rival = [np.zeros((10, 64), dtype=bool)]
    for i in range(10):
        rival[0][i, rng.choice(64, 16, replace=False)] = True
    one = [rival[0].copy()]
    one[0][0] = rival[0][1]  # class 0 takes class 1's set: more overlap, every other class the same
    t = swap_ahead(one, rival, "max")
    assert t["p_floor"] == pytest.approx(0.5) and t["p_greater"] == pytest.approx(0.5)
    core = [np.zeros((10, 64), dtype=bool)]
    core[0][:, :8] = True
    for i in range(10):
        core[0][i, 8 + rng.choice(56, 8, replace=False)] = True
    t = swap_ahead(core, rival, "max")
    assert t["p_floor"] == 1 / 1024 and t["p_greater"] == 1 / 1024


# darts at beta 1.3 (issue 34): every sub-architecture names its own class's images (1.0) and
# 91.8-100% of the other classes' images as its class
DARTS_13 = [0.500, 0.534, 0.500, 0.500, 0.526, 0.500, 0.501, 0.541, 0.506, 0.500]


def _cross(balanced, own=1.0):
    """A cross-class accuracy matrix whose sub-architectures have ``balanced`` accuracies with
    ``own`` on their class (others = own + 1 - 2 balanced on every other class)."""
    k = len(balanced)
    m = np.zeros((k, k))
    for c, b in enumerate(balanced):
        m[c] = own + 1 - 2 * b
        m[c, c] = own
    return m


def test_specificity_needs_a_size_and_an_interval_and_never_counts_a_constant_answer():
    from nadkit.stats import SPECIFIC_MIN, specific_run

    darts = specific_run(_cross(DARTS_13), range(10))
    assert not darts["holds"] and darts["constant"].all() and not darts["specific"].any()
    assert darts["low"] >= 0.5 and darts["high"] <= 1.0  # bounded to the measure's range
    planted = [0.9, 0.85, 0.95, 0.8, 0.9, 0.88, 0.92, 0.87, 0.9, 0.83]
    good = specific_run(_cross(planted), range(10))
    assert good["holds"] and good["specific"].all() and good["low"] > 0.5 and good["mean"] >= SPECIFIC_MIN
    # significantly above 0.5 but below the smallest effect worth reporting: not specific
    small = specific_run(_cross([0.55, 0.56, 0.57, 0.55, 0.56, 0.57, 0.55, 0.56, 0.57, 0.56]), range(10))
    assert small["low"] > 0.5 and not small["holds"]
    # one class answering constantly inside a specific run is reported, never called specific
    mixed = specific_run(_cross(planted[:9] + [0.52]), range(10))
    assert mixed["holds"] and mixed["constant"].tolist() == [False] * 9 + [True]
    assert mixed["specific"].tolist() == [True] * 9 + [False]


def test_the_pooled_swap_test_finds_a_planted_core_over_instances_and_not_a_null():
    """One test over three instances (class swaps within each, the differences summed): a core
    shared by NAD's classes at one point is found, random against random is not, one class
    differing per instance gives a smallest attainable p of 1/8 (0.5 per instance) that no
    threshold can reach; the power table rises from the level at 0 to 1 at a core a quarter of
    the set."""
    from nadkit.stats import pooled_power, swap_ahead, swap_pooled

    rng = np.random.default_rng(5)

    def sets(core=0):
        x = np.zeros((10, 64), dtype=bool)
        for i in range(10):
            x[i, :core] = True
            x[i, core + rng.choice(64 - core, 16 - core, replace=False)] = True
        return [x]

    planted = swap_pooled([swap_ahead(sets(6), sets(), "max")["dist"] for _ in range(3)])
    assert planted["p_greater"] < 0.01 and planted["p_floor"] < 0.001
    null = [swap_pooled([swap_ahead(sets(), sets(), "max")["dist"] for _ in range(3)], seed=i)["p_greater"]
            for i in range(5)]
    assert min(null) > 0.01
    tied = []
    for _ in range(3):
        rival = sets()
        one = [rival[0].copy()]
        one[0][0] = rival[0][1]
        tied.append(swap_ahead(one, rival, "max")["dist"])
    assert swap_pooled(tied)["p_floor"] == pytest.approx(1 / 8)
    table = pooled_power(effects=(0, 4), reps=20, points=1)
    assert table[0]["rejection rate"] <= 0.2 and table[1]["rejection rate"] >= 0.8


def test_planted_groups_make_the_overlap_uneven_and_the_uneven_test_sees_them():
    """Two groups of five classes, each sharing a core: within a group the sets overlap more than
    across, so the uneven finding's own test (swap null) rejects more often as the core grows,
    and at no core holds its level."""
    from nadkit.overlap import jaccard_rows
    from nadkit.stats import planted_sets, uneven_power

    x = planted_sets(np.random.default_rng(0), 6, groups=2)
    assert (x.sum(1) == 16).all() and x[:5, :6].all() and x[5:, 6:12].all()
    j = jaccard_rows(x)
    assert j[0, 1] > j[0, 9]  # the same group overlaps more than across groups
    rows = uneven_power(effects=(0, 6), reps=12, draws=49)
    assert rows[0]["rejection rate"] <= 0.25 and rows[1]["rejection rate"] >= 0.5
