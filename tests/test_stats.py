import numpy as np
import torch

from nadkit.stats import divided_by_class, mean_interval, misjudgment_test, same_class_agreement, similarity_drop


def random_masks(classes=10, width=64, seed=0, keep=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(classes, width, generator=g) < keep


def test_interval_excludes_zero_only_for_a_real_shift():
    rng = np.random.default_rng(0)
    assert mean_interval(rng.normal(1.0, 0.5, 30)).holds
    assert not mean_interval(rng.normal(0.0, 0.5, 30)).holds
    # no spread: no interval, so nothing holds (a constant sample cannot support one)
    assert not mean_interval([0.2] * 10).holds


def test_classes_divided_only_when_seeds_agree_better_than_classes():
    # the same class gives the same masks whatever the seed; classes differ: divided
    classes = random_masks()
    runs = [[classes], [classes.clone()]]
    assert divided_by_class(runs)[0].holds
    assert same_class_agreement(runs)[:, 0].min() == 1.0
    # every seed draws new random masks: classes differ no more than seeds do
    noise = [[random_masks(seed=s)] for s in range(3)]
    assert not divided_by_class(noise)[0].holds


def test_similarity_drop_sees_a_drop_and_not_its_absence():
    shared = torch.ones(10, 64, dtype=torch.bool)
    divided = random_masks(keep=0.3)
    assert similarity_drop([shared, divided]).holds
    assert not similarity_drop([divided, divided]).holds


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
