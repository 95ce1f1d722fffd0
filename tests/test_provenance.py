"""Provenance, checked: a result records the network's weights (sha256), nadkit, torch and the device,
and masks are never used on, merged for, or resumed with other weights unless asked explicitly."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_bad_input import error_of

from nadkit import __version__, pipeline
from nadkit.cli import main
from nadkit.networks import MODELS_DIR, load_network, weights_sha256
from nadkit.subarch import SubArchitectures

FAST = ["--steps", "2", "--batch-per-class", "2", "--classes", "0,1"]


def retrain(path):
    """Change one weight, as a retrained network file would."""
    state = load_file(str(path))
    state["classifier.bias"][0] += 0.5
    save_file(state, str(path))


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "vgg.safetensors"
    shutil.copy(MODELS_DIR / "vgg16.safetensors", path)
    return path


def run_argv(weights, out):
    return ["disentangle", "--arch", "vgg16", "--weights", str(weights), "--out", str(out)] + FAST


@pytest.mark.slow
def test_meta_json_records_provenance(tmp_path, weights):
    assert main(run_argv(weights, tmp_path / "r")) == 0
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    sha = weights_sha256(load_network("vgg16", weights=str(weights)))
    assert meta["config"]["weights_sha256"] == sha
    prov = meta["provenance"]
    assert prov["weights_sha256"] == sha and prov["nadkit"] == __version__ and prov["torch"] == torch.__version__
    assert prov["device"] == "cpu"
    assert set(meta["files"]) == {"masks.safetensors", "history.safetensors"}


@pytest.mark.slow
def test_evaluate_refuses_masks_of_other_weights(tmp_path, weights, capsys):
    out = tmp_path / "r"
    assert main(run_argv(weights, out)) == 0
    retrain(weights)
    assert "learned on other weights" in error_of(capsys, ["evaluate", str(out), "--mosaics", "1"])
    sub = SubArchitectures.load(out)
    with pytest.raises(pipeline.NadkitError, match="--allow-other-weights"):
        pipeline.network_of(sub)
    model, _, _ = pipeline.network_of(sub, allow_other_weights=True)  # when one means it
    assert weights_sha256(model) != sub.config["weights_sha256"]


@pytest.mark.slow
def test_a_rerun_on_other_weights_refuses_to_replace_the_result(tmp_path, weights, capsys):
    out = tmp_path / "r"
    assert main(run_argv(weights, out)) == 0
    before = (out / "meta.json").read_text()
    retrain(weights)
    assert "holds a result of this run on other weights" in error_of(capsys, run_argv(weights, out))
    assert (out / "meta.json").read_text() == before
    assert main(run_argv(weights, out) + ["--allow-other-weights"]) == 0
    assert SubArchitectures.load(out).config["weights_sha256"] != json.loads(before)["config"]["weights_sha256"]


@pytest.mark.slow
def test_merge_and_resume_refuse_partial_classes_of_other_weights(tmp_path, weights, capsys, monkeypatch):
    out = tmp_path / "cut"

    def die(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "merge", die)
    assert main(run_argv(weights, out)) == 130
    monkeypatch.undo()
    retrain(weights)
    assert "learned on other weights" in error_of(capsys, ["merge", str(out)])
    assert "partial holds finished classes of this run on other weights" in error_of(capsys, run_argv(weights, out))
    assert len(list((out / "partial").glob("class-*"))) == 2  # nothing lost
    assert main(["merge", str(out), "--allow-other-weights"]) == 0


@pytest.mark.slow
def test_a_result_of_an_older_nadkit_is_refused(tmp_path, weights, capsys):
    out = tmp_path / "r"
    assert main(run_argv(weights, out)) == 0
    meta = json.loads((out / "meta.json").read_text())
    del meta["config"]["weights_sha256"]
    (out / "meta.json").write_text(json.dumps(meta))
    assert "older nadkit" in error_of(capsys, ["evaluate", str(out)])
    del meta["files"]
    (out / "meta.json").write_text(json.dumps(meta))
    assert "older nadkit" in error_of(capsys, ["evaluate", str(out)])
    assert main(run_argv(weights, out)) == 0  # re-running recomputes it
    assert "weights_sha256" in SubArchitectures.load(out).config
