"""Findings on synthetic evaluations: untestable points leave the Holm family, a per-point finding
holds only where instances agree, and a constant answer is not specific."""

import numpy as np

from nadkit.findings import of_run, replicated, specificity


def report(p, kappa, expected=None, n_classes=4):
    n = len(p)
    conf = np.eye(n_classes) * 90 + 1
    return {"points": [f"p{i}" for i in range(n)], "kept": [0.5] * n, "classes": list(range(n_classes)),
            "similarity_kappa": kappa, "similarity_expected": expected or [0.5] * n,
            "similarity_p_uniform": p, "similarity_p_swap": [1.0] * n,
            "similarity_matrix": np.eye(n_classes).tolist(), "confusion": conf.tolist(),
            "misjudgment": {}, "accuracy": {"subarch": [1.0] * n_classes}}


def test_a_point_whose_sets_are_whole_leaves_the_holm_family():
    # three points at p 0.02: Holm over 3 gives 0.06 (nothing); the whole-layer one is untestable,
    # so Holm runs over 2 and both others hold
    p = [0.02, 0.02, 0.02]
    with_full = of_run(report(p, [-0.1, -0.1, None], expected=[0.5, 0.5, 1.0]))["fewer"]
    assert with_full.points == [1, 2] and with_full.untestable == [3]
    counted = of_run(report(p, [-0.1, -0.1, -0.1]))["fewer"]
    assert counted.points == [] and not counted.holds


def test_a_point_holds_only_where_instances_agree():
    fewer = report([0.001, 0.001], [-0.1, -0.1])
    more_at_2 = report([0.001, 0.001], [-0.1, 0.2])
    runs = [of_run(fewer), of_run(fewer), of_run(more_at_2)]
    r = replicated(runs)["fewer"]
    assert r["points"] == [1] and r["inconsistent"] == [2] and r["status"] == "holds"
    # with two instances significantly the other way at both points, nothing holds
    runs = [of_run(fewer), of_run(report([0.001, 0.001], [0.2, 0.2])), of_run(report([0.001, 0.001], [0.2, 0.2]))]
    r = replicated(runs)
    assert r["fewer"]["points"] == [] and r["fewer"]["status"] == "not shown"
    assert r["more"]["points"] == [] and r["more"]["inconsistent"] == [1, 2]


def test_untestable_everywhere_is_not_testable_not_negative():
    full = report([1.0, 1.0], [None, None], expected=[1.0, 1.0])
    r = replicated([of_run(full)] * 3)["fewer"]
    assert r["status"] == "cannot be tested here" and not r["holds"]


def test_a_constant_answer_is_not_specific():
    classes = [0, 1, 2, 3]
    constant = np.ones((4, 4))            # every sub-architecture names its class for every image
    s = specificity(constant, classes)
    assert np.allclose(s["balanced"], 0.5) and np.allclose(s["others"], 1.0)
    control = {"cross_accuracy": constant.tolist()}
    assert not of_run(report([1.0], [0.0]), control)["specific"].holds
    detector = np.diag([0.9, 0.95, 0.97, 0.99]) + 0.02
    assert of_run(report([1.0], [0.0]), {"cross_accuracy": detector.tolist()})["specific"].holds


def test_a_collapsed_run_is_not_measurable():
    import torch

    from nadkit.sanity import collapse, measurable

    empty = [torch.zeros(4, 8, dtype=torch.bool), torch.ones(4, 8, dtype=torch.bool)]
    empty[1][:3] = False  # 7 of 8 class-points empty
    one_class = np.zeros((4, 4))
    one_class[:, 2] = 10
    ok, why = measurable(collapse(empty, one_class))
    assert not ok and "88% of class-points" in why and "one class for 100.00%" in why
    full = [torch.ones(4, 8, dtype=torch.bool)]
    assert measurable(collapse(full, np.eye(4) * 10)) == (True, "")


def test_a_decision_within_two_monte_carlo_errors_is_flagged():
    # Holm over 3 points: p 0.024 twice -> adjusted 0.048, within 2 s.e. of 0.05 with 999 draws
    # (s.e. of the adjusted p ~0.01) but not with 999,999 (~0.0003); p 0.001 -> 0.003, far either way
    base = report([0.001, 0.024, 0.024], [-0.1, -0.1, -0.1])
    few = of_run(base | {"similarity_p_uniform_draws": 999})["fewer"]
    assert few.points == [1, 2, 3] and few.near == [2, 3]
    many = of_run(base | {"similarity_p_uniform_draws": 999_999})["fewer"]
    assert many.points == [1, 2, 3] and many.near == []
    assert of_run(base)["fewer"].near == []   # draws unknown: not Monte-Carlo, nothing to flag
    assert replicated([{"fewer": few}] * 3)["fewer"]["near"] == [2, 3]


def test_darts_at_beta_1_3_is_not_specific_and_its_kept_class_cannot_be_tested():
    """Issue 34's darts run at beta 1.3: balanced accuracy 0.50-0.54 per class with 97.8% of the
    other classes' images named as the class. It is not specific, every class answers (almost)
    constantly, and *keep their class* cannot be tested (a constant answer keeps its class
    whatever the channels); a planted detector is specific and its kept class is tested."""
    from test_stats import DARTS_13, _cross

    base = report([1.0], [0.0], n_classes=10)
    base["accuracy"] = {"subarch": [1.0] * 10}
    control = {"cross_accuracy": _cross(DARTS_13).tolist(), "random_accuracy": [0.1 + 0.01 * c for c in range(10)]}
    found = of_run(base, control)
    assert not found["specific"].holds and all(found["specific"].constant) and not any(found["specific"].by_class)
    assert "answer (almost) constantly" in found["specific"].evidence
    acc = found["accuracy"]
    assert not acc.holds and not acc.testable and acc.evidence.startswith("cannot be tested here")
    r = replicated([found] * 3)
    assert r["accuracy"]["status"] == "cannot be tested here" and r["specific"]["status"] == "not shown"
    planted = [0.9, 0.85, 0.95, 0.8, 0.9, 0.88, 0.92, 0.87, 0.9, 0.83]
    found = of_run(base, control | {"cross_accuracy": _cross(planted).tolist()})
    assert found["specific"].holds and found["accuracy"].testable and found["accuracy"].holds


def test_a_masked_network_that_answers_one_class_is_not_measurable():
    """The collapse guard reads the masked network: full masks (no class-point empty) on a trained
    network (its own confusion diagonal) whose sub-architectures name their class for every image
    is not measurable; the same masks answering like detectors are."""
    import torch

    from nadkit.sanity import MEASURABLE_RULE, collapse, measurable

    full = [torch.ones(4, 8, dtype=torch.bool)] * 3
    trained = np.eye(4) * 100 + 1
    one_class = np.ones((4, 4))  # every image named as the sub-architecture's class
    c = collapse(full, trained, one_class, [0, 1, 2, 3])
    assert c["top answer share"] < 0.3 and c["empty class-points"] == 0 and c["constant sub-architectures"] == 1.0
    ok, why = measurable(c)
    assert not ok and "100% of sub-architectures answer (almost) constantly" in why
    assert measurable(collapse(full, trained, np.eye(4) * 0.9 + 0.02)) == (True, "")
    half = np.eye(4) * 0.9 + 0.02
    half[:2] = 0.95  # two of four constant: not more than half
    assert measurable(collapse(full, trained, half))[0]
    assert "more than 50% of its sub-architectures" in MEASURABLE_RULE
