import json
import subprocess
import sys

import pytest
import torch

from nadkit import data as D
from nadkit.cli import main
from nadkit.networks import MODELS_DIR

pytestmark = pytest.mark.slow  # runs NAD, trains, builds the book or opens a browser: not in make quick

FAST = ["--steps", "3", "--batch-per-class", "4"]


def error_of(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("nadkit: error:"), err
    return err


def test_end_to_end_on_four_classes(tmp_path):
    out, report = tmp_path / "run", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "nadkit"]
    subprocess.run(cmd + ["disentangle", "--arch", "vgg16", "--classes", "0,2,4,6", "--out", str(out)] + FAST,
                   check=True, capture_output=True)
    assert (out / "masks.safetensors").exists() and (out / "meta.json").exists()
    run = subprocess.run(cmd + ["evaluate", str(out), "--mosaics", "8", "--json", str(report)],
                         check=True, capture_output=True, text=True)
    assert "conv5_3" in run.stdout and "misjudgment" in run.stdout
    r = json.loads(report.read_text())
    assert {"points", "kept", "similarity", "hit_rate", "accuracy", "misjudgment"} <= set(r)
    assert len(r["points"]) == len(r["kept"]) == len(r["similarity"]) == len(r["hit_rate"]) == 13
    assert len(r["accuracy"]["original"]) == len(r["accuracy"]["subarch"]) == 4
    assert {"mis", "oth", "dif"} <= set(r["misjudgment"])
    # specificity: each sub-architecture as a detector of its class, balanced with its own rate
    acc = r["accuracy"]
    assert len(acc["subarch_others"]) == len(acc["subarch_balanced"]) == 4
    for others, balanced in zip(acc["subarch_others"], acc["subarch_balanced"]):
        assert 0 <= others <= 1 and 0 <= balanced <= 1
    agrees_with_an_independent_computation(r, out)


def agrees_with_an_independent_computation(r, out):
    """The measures against chance in the JSON, recomputed from the masks another way: the
    expected Jaccard by Monte Carlo over random channel sets of the same sizes, and the
    chance-corrected Dif by its definition."""
    import numpy as np

    from nadkit.subarch import SubArchitectures

    assert {"similarity_expected", "similarity_kappa", "similarity_p_uniform", "similarity_p_swap"} <= set(r)
    assert {"p_qap", "dif_delta", "p_qap_delta", "dif_size"} <= set(r["misjudgment"])
    binary = [b.numpy() for b in SubArchitectures.load(out).binary()]
    rng = np.random.default_rng(0)
    k = len(r["classes"])
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    delta = np.zeros((k, k))
    for p, b in enumerate(binary):
        sizes, n = b.sum(1), b.shape[1]
        mc = np.zeros((k, k))
        for _ in range(400):
            x = np.stack([rng.permutation(n) < s for s in sizes])
            inter = (x[:, None] & x[None]).sum(-1)
            union = (x[:, None] | x[None]).sum(-1)
            mc += np.where(union > 0, inter / np.maximum(union, 1), 1.0) / 400
        assert r["similarity_expected"][p] == pytest.approx(np.mean([mc[i, j] for i, j in pairs]), abs=0.02)
        inter = (b[:, None] & b[None]).sum(-1)
        union = (b[:, None] | b[None]).sum(-1)
        delta += (np.where(union > 0, inter / np.maximum(union, 1), 1.0) - mc) / len(binary)
    conf = np.array(r["confusion"])[np.ix_(r["classes"], r["classes"])]
    rate = conf / conf.sum(1, keepdims=True)
    difs = []
    for i in range(k):
        mis = [j for j in range(k) if j != i and rate[i, j] >= r["misjudgment"]["min_rate"]]
        oth = [j for j in range(k) if j != i and j not in mis]
        if mis and oth:
            difs.append(delta[i, mis].mean() - delta[i, oth].mean())
    if difs:
        assert r["misjudgment"]["dif_delta"] == pytest.approx(np.mean(difs), abs=0.02)
        assert 0 < r["misjudgment"]["p_qap"] <= 1 and 0 < r["misjudgment"]["p_qap_delta"] <= 1


def test_two_classes_and_rerun_reuses_the_result(tmp_path, capsys):
    argv = ["disentangle", "--arch", "vgg16", "--classes", "1,3", "--out", str(tmp_path)] + FAST
    assert main(argv) == 0
    stamp = (tmp_path / "masks.safetensors").stat().st_mtime_ns
    assert main(argv) == 0
    assert (tmp_path / "masks.safetensors").stat().st_mtime_ns == stamp
    assert main(["evaluate", str(tmp_path), "--mosaics", "4"]) == 0  # fewer than 4 classes: no hit rate
    quick = tmp_path / "quick.json"
    assert main(["evaluate", str(tmp_path), "--mosaics", "4", "--test-per-class", "5", "--json", str(quick)]) == 0
    r = json.loads(quick.read_text())
    assert r["test_per_class"] == 5 and sum(map(sum, r["confusion"])) == 50  # 5 images of each of 10 classes
    assert "per class must be >= 1" in error_of(capsys, ["evaluate", str(tmp_path), "--test-per-class", "0"])


@pytest.mark.parametrize("argv, words", [
    (["disentangle", "--arch", "alexnet", "--out", "x"], "unknown arch"),
    (["disentangle", "--arch", "vgg16", "--dataset", "cifar", "--out", "x"], "unknown dataset"),
    (["disentangle", "--arch", "vgg16", "--classes", "0,10", "--out", "x"], "out of range"),
    (["disentangle", "--arch", "vgg16", "--classes", "a,b", "--out", "x"], "neither a class id"),
    (["disentangle", "--arch", "vgg16", "--beta", "-1", "--out", "x"], "beta must be"),
    (["disentangle", "--arch", "vgg16", "--lr", "0", "--out", "x"], "lr must be > 0"),
    (["disentangle", "--arch", "vgg16", "--objective", "mine", "--out", "x"], "unknown objective"),
    (["disentangle", "--arch", "vgg16", "--device", "cuda:7", "--out", "x"], "CUDA is not available"),
    (["disentangle", "--arch", "vgg16", "--weights", "missing.safetensors", "--out", "x"], "not found"),
    (["evaluate", "nowhere"], "no meta.json"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, words):
    if "cuda:7" in argv and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is present")
    assert words in error_of(capsys, argv)


def test_corrupt_weights_and_masks_of_another_network(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    assert "not a readable" in error_of(capsys, ["disentangle", "--arch", "vgg16", "--weights", str(bad), "--out", "x"])
    other = str(MODELS_DIR / "vgg16.safetensors")
    assert "do not fit" in error_of(capsys, ["disentangle", "--arch", "darts", "--weights", other, "--out", "x"])
    run = tmp_path / "run"
    assert main(["disentangle", "--arch", "vgg16", "--classes", "0,1", "--out", str(run)] + FAST) == 0
    meta = json.loads((run / "meta.json").read_text())
    meta["config"]["arch"] = "resnet50"  # masks of a vgg16 presented as a resnet50's
    (run / "meta.json").write_text(json.dumps(meta))
    assert "other mask points" in error_of(capsys, ["evaluate", str(run)])
    assert "top fraction" in error_of(capsys, ["evaluate", str(run), "--top", "1.5"])


def test_missing_data_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(D, "fashion_mnist_dirs", lambda: [tmp_path])
    assert "dataset-fashion-mnist" in error_of(capsys, ["disentangle", "--arch", "vgg16", "--out", str(tmp_path / "r")])


def test_no_traceback_from_the_console_script():
    run = subprocess.run([sys.executable, "-m", "nadkit", "disentangle", "--arch", "nope", "--out", "x"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "unknown arch" in run.stderr


def test_the_authors_augmentation_is_recorded_and_changes_the_masks(tmp_path):
    from nadkit.subarch import SubArchitectures

    plain, aug = tmp_path / "plain", tmp_path / "aug"
    argv = ["disentangle", "--arch", "vgg16", "--classes", "0,1", "--steps", "20", "--batch-per-class", "4"]
    assert main(argv + ["--out", str(plain)]) == 0
    assert main(argv + ["--augment", "authors", "--out", str(aug)]) == 0
    a, b = SubArchitectures.load(plain), SubArchitectures.load(aug)
    assert b.config["augment"] == "authors" and "augment" not in a.config
    assert any(not torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
