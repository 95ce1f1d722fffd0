"""``nadkit ablate``: a planted channel is necessary for its class only; random rankings are not
selective; the hook ablation is the weight edit; an interrupted run resumes to the same result."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nadkit import ablate as A
from nadkit import necessity as N
from nadkit.cli import main
from nadkit.networks import load_network
from nadkit.points import MaskPoint, mask_points


class Planted(nn.Module):
    """Channel c of the input is class c's evidence: logits are the channels' spatial means."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Identity()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.feat(x).mean((2, 3)) * self.scale


def planted_images(k: int = 4, channels: int = 8, per_class: int = 5, seed: int = 0):
    """Class c's images: channel c at 1, every other channel uniform in [0.1, 0.3]."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat_interleave(per_class)
    x = 0.1 + 0.2 * torch.rand(len(labels), channels, 4, 4, generator=gen)
    x[torch.arange(len(labels)), labels] = 1.0
    return x, labels


def test_the_planted_channel_is_necessary_for_its_class_only():
    x, labels = planted_images()
    point, classes = MaskPoint("feat", "feat"), [0, 1, 2, 3]
    binary = torch.zeros(4, 8, dtype=torch.bool)
    binary[torch.arange(4), torch.arange(4)] = True
    order = torch.stack([torch.cat([torch.tensor([c]), torch.tensor([j for j in range(8) if j != c])])
                         for c in classes])
    res = A.ablate_point(Planted(), point, x, labels, classes, binary, {"nad": order}, [1], draws=5,
                         popularity_draws=2)
    assert torch.equal(res["base.balanced"], torch.ones(4))
    drop = N.drops(res, "nad")[:, 0, :]                     # [ablated, measured]
    np.testing.assert_allclose(np.diag(drop), 0.5)          # down to chance...
    recall = (res["base.accuracy"] - res["nad.accuracy"][:, 0, :]).numpy()
    np.testing.assert_allclose(np.diag(recall), 1.0)        # no image of the class is recognised...
    np.testing.assert_allclose(recall - np.diag(np.diag(recall)), 0.0)  # ...every other class's still are
    # (its images now go to other classes: their true-negative rate falls by at most 5 of 15 images)
    assert (drop - np.diag(np.diag(drop)) <= 5 / 15 / 2 + 1e-6).all()
    assert (N.selectivity(res, "nad", 1) > 0.5 - 5 / 15 / 2 / 3 - 1e-6).all()
    kept = res["keep only.accuracy"].numpy()               # only its own channel left: its images are
    assert (np.diag(kept) == 1).all()                       # still recognised (and so is every image:
    np.testing.assert_allclose(np.diag(N.drops(res, "keep only")), 0.5)  # balanced accuracy at chance)


def test_random_rankings_are_not_selective_on_average():
    x, labels = planted_images(per_class=3)
    classes, gen = [0, 1, 2, 3], torch.Generator().manual_seed(1)
    binary = torch.zeros(4, 8, dtype=torch.bool)
    sel = []
    for _ in range(60):
        order = torch.stack([torch.randperm(8, generator=gen) for _ in classes])
        res = A.ablate_point(Planted(), MaskPoint("feat", "feat"), x, labels, classes, binary, {"nad": order},
                             [1], draws=1, popularity_draws=0)
        sel.append(N.selectivity(res, "nad", 1))
    sel = np.array(sel)
    assert abs(sel.mean()) < 0.03 and sel.std() > 0.05  # (one random channel is class c's 1 time in 8)


def edited(model: nn.Module, zero: torch.Tensor) -> nn.Module:
    """vgg16 with conv1_1's channels ``zero`` removed by editing weights: conv output and BN scale
    and shift set to 0, so the channel is 0 after BN and ReLU."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        m.features.conv1_1.weight[zero] = 0
        if m.features.conv1_1.bias is not None:
            m.features.conv1_1.bias[zero] = 0
        m.features.bn1_1.weight[zero] = 0
        m.features.bn1_1.bias[zero] = 0
    return m


@pytest.mark.slow
def test_hook_ablation_equals_editing_the_weights(test_data):
    model = load_network("vgg16").eval()
    point = mask_points("vgg16", model)[0]
    assert point.module == "features.relu1_1"
    x = test_data.load(torch.arange(40))
    gen = torch.Generator().manual_seed(0)
    zero = torch.stack([torch.randperm(16, generator=gen) < k for k in (1, 4, 8, 12)])
    got = A.ablated_predictions(model, point, x, zero)                     # the point's output expanded
    one_by_one = torch.cat([A.ablated_predictions(model, point, x[i:i + 1], zero) for i in range(40)], 1)
    with torch.no_grad():
        want = torch.stack([edited(model, z)(x).argmax(1) for z in zero])
    assert torch.equal(got, want) and torch.equal(one_by_one, want)          # (and images repeated)
    assert (got != model(x).argmax(1)).any()                                 # the ablation did something


@pytest.mark.slow
def test_a_skip_connection_from_before_the_point_falls_back_to_repeated_images(test_data):
    model = load_network("darts").eval()
    point = mask_points("darts", model)[4]  # cell 2: cell 3 reads cell 1's output too
    x = test_data.load(torch.arange(6))
    zero = torch.zeros(3, 64, dtype=torch.bool)
    zero[1, :32] = True
    zero[2] = True
    got = A.ablated_predictions(model, point, x, zero)
    with torch.no_grad():
        assert torch.equal(got[0], model(x).argmax(1))
    assert torch.equal(got, torch.cat([A.ablated_predictions(model, point, x[i:i + 1], zero) for i in range(6)], 1))


def test_measures_and_grid():
    assert A.k_grid(1) == [1] and A.k_grid(8) == [1, 2, 4, 8] and A.k_grid(9) == [1, 2, 4, 8, 9]
    pred, labels = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0]]), torch.tensor([0, 0, 1, 1])
    acc, bal = A.class_measures(pred, labels, [0, 1])
    assert acc.tolist() == [[1, 1], [1, 0]] and bal.tolist() == [[1, 1], [0.5, 0.5]]
    order = torch.tensor([[2, 0, 1, 3]])
    binary = torch.tensor([[True, True, False, False], [True, False, False, False]])
    swapped = A.popularity_matched(order, binary, torch.Generator().manual_seed(0))
    pop = binary.sum(0)
    assert torch.equal(pop[swapped], pop[order]) and sorted(swapped[0].tolist()) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("abl") / "vgg16"
    assert main(["disentangle", "--arch", "vgg16", "--classes", "0,1,2", "--steps", "2", "--batch-per-class", "2",
                 "--out", str(out)]) == 0
    return out


ARGS = ["--points", "conv1_1,conv5_3", "--orders", "nad,taylor", "--draws", "3", "--popularity-draws", "2",
        "--per-class", "4"]


@pytest.mark.slow
def test_an_interrupted_ablation_resumes_to_the_same_result(result, tmp_path, monkeypatch, capsys):
    whole = tmp_path / "whole"
    assert main(["ablate", str(result), *ARGS, "--out", str(whole)]) == 0
    assert "selectivity" in capsys.readouterr().out
    save = A.save_point

    def die_after_first(path, res, config):
        save(path, res, config)
        raise KeyboardInterrupt  # killed once the first point is on disk

    cut = tmp_path / "cut"
    monkeypatch.setattr(A, "save_point", die_after_first)
    assert main(["ablate", str(result), *ARGS, "--out", str(cut)]) == 130
    monkeypatch.undo()
    assert [p.name for p in (cut / "points").iterdir()] == ["conv1_1.safetensors"]
    assert not (cut / "ablation.json").exists()
    assert main(["ablate", str(result), *ARGS, "--out", str(cut)]) == 0
    a, b = A.load(whole), A.load(cut)
    assert a["config"] == b["config"] and a["points"] == ["conv1_1", "conv5_3"]
    for p in a["points"]:
        assert a["results"][p].keys() == b["results"][p].keys()
        for k in a["results"][p]:  # bit for bit (NaN: a random draw not measured at that k)
            torch.testing.assert_close(a["results"][p][k], b["results"][p][k], rtol=0, atol=0, equal_nan=True)
    meta = json.loads((whole / "ablation.json").read_text())
    assert meta["provenance"]["weights_sha256"] and meta["kept"]["conv1_1"]
    # SIGKILLed inside the write of the second point's file, then inside ablation.json's: each
    # rerun of the same command finishes what is left, and the result is the uninterrupted one
    killed = tmp_path / "killed"
    for window in ("conv5_3.safetensors", "ablation.json"):
        env = dict(os.environ, NADKIT_TEST_KILL_AT=window, OMP_NUM_THREADS="1")
        rc = subprocess.run([sys.executable, "-m", "nadkit", "ablate", str(result), *ARGS, "--out", str(killed)],
                            env=env, capture_output=True, text=True).returncode
        assert rc == -signal.SIGKILL
        assert not (killed / "ablation.json").exists()
    assert main(["ablate", str(result), *ARGS, "--out", str(killed)]) == 0
    k = A.load(killed)
    for p in a["points"]:
        for key in a["results"][p]:
            torch.testing.assert_close(k["results"][p][key], a["results"][p][key], rtol=0, atol=0, equal_nan=True)
    # one point alone repeats its draws: a shipped ablation can be checked one point at a time
    one = ARGS.copy()
    one[1] = "conv5_3"
    assert main(["ablate", str(result), *one, "--out", str(tmp_path / "one")]) == 0
    c = A.load(tmp_path / "one")["results"]["conv5_3"]
    for k in c:
        torch.testing.assert_close(c[k], a["results"]["conv5_3"][k], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("argv, says", [
    (["--points", "conv9_9"], "no mask point 'conv9_9'"),
    (["--orders", "nad,magic"], "unknown order 'magic'"),
    (["--orders", "taylor"], "must include nad"),
    (["--k", "0,2"], "--k must list"),
    (["--k", "two"], "--k must be"),
    (["--draws", "0"], "--draws"),
])
@pytest.mark.slow
def test_bad_input_is_one_line(result, tmp_path, capsys, argv, says):
    assert main(["ablate", str(result), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err


def planted_ranking():
    """Images where class c needs channel c alone, one channel per class kept, and the ranking
    that puts each class's own channel first: (x, labels, classes, binary, ranking)."""
    x, labels = planted_images(k=8, per_class=3)
    classes = list(range(8))
    binary = torch.eye(8, dtype=torch.bool)
    planted = torch.stack([torch.cat([torch.tensor([c]), torch.tensor([j for j in range(8) if j != c])])
                           for c in classes])
    return x, labels, classes, binary, planted


def test_versus_finds_a_selective_ranking_and_only_where_it_is():
    x, labels, classes, binary, planted = planted_ranking()
    gen = torch.Generator().manual_seed(0)
    shuffled = torch.stack([torch.randperm(8, generator=gen) for _ in classes])
    point = MaskPoint("feat", "feat")
    results = {name: A.ablate_point(Planted(), point, x, labels, classes, binary, {"nad": order}, [1],
                                    draws=20, popularity_draws=3)
               for name, order in (("planted", planted), ("shuffled", shuffled))}
    abl = {"results": results, "matrix_k": {"planted": 1, "shuffled": 1}, "kept": {"planted": [1] * 8,
                                                                                  "shuffled": [1] * 8}}
    test = N.versus(abl, "random")
    assert test["estimate"][0] > 0.4 and test["p_holm"][0] < 0.05
    assert list(N.holds_at(test)) == [0]
    # replication over instances: the planted point holds on both, nothing with one instance
    abl["points"] = ["planted", "shuffled"]
    assert N.held_on([abl, abl], "random") == ["planted"]
    assert N.held_on([abl], "random") is None


def test_a_whole_layer_or_rounding_is_not_testable_and_leaves_holm():
    x, labels, classes, binary, planted = planted_ranking()
    point = MaskPoint("feat", "feat")
    res = A.ablate_point(Planted(), point, x, labels, classes, binary, {"nad": planted}, [1],
                         draws=20, popularity_draws=3)
    abl = {"results": {"a": res, "b": res}, "matrix_k": {"a": 1, "b": 1}, "kept": {"a": [1] * 8, "b": [1] * 8},
           "points": ["a", "b"], "widths": {"a": 8, "b": 8}}
    both = N.versus(abl, "random")
    # "b" as a whole layer: untestable, so Holm runs over "a" alone
    abl["widths"] = {"a": 8, "b": 1}
    one = N.versus(abl, "random")
    assert np.isnan(one["p"][1]) and "1 of 1 channels" in one["untestable"]["b"]
    assert one["p_holm"][0] == one["p"][0] <= both["p_holm"][0]
    assert N.testable_on([abl, abl], "random") == {"a": "", "b": "the set is 1 of 1 channels"}
    # NAD's own order against itself: every difference is zero, no Wilcoxon on it
    self_test = N.versus({**abl, "widths": {}}, "nad")
    assert np.all(np.isnan(self_test["p"])) and "float resolution" in self_test["untestable"]["a"]
