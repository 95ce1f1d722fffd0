"""``nadkit train`` writes to --out (default a new folder under runs/), never over the shipped
networks unless asked explicitly, atomically in any case. The training itself is stubbed."""

import hashlib
import json
import os

import pytest

from nadkit import train as T
from nadkit.cli import main
from nadkit.networks import MODELS_DIR, build_network, load_network

pytestmark = pytest.mark.slow  # runs NAD, trains, builds the book or opens a browser: not in make quick


def shipped() -> dict:
    files = sorted(p for p in MODELS_DIR.rglob("*") if p.is_file())
    return {str(p.relative_to(MODELS_DIR)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def stub(monkeypatch):
    def fit(arch, epochs, seed, batch, lr, permute_labels=None, subset=None):
        return build_network(arch).eval(), {"arch": arch, "dataset": "fashion-mnist", "epochs": epochs, "seed": seed}

    monkeypatch.setattr(T, "_fit", fit)


def test_train_defaults_to_a_new_folder_under_runs(tmp_path, monkeypatch, stub, capsys):
    monkeypatch.chdir(tmp_path)
    before = shipped()
    assert main(["train", "--arch", "vgg16", "--epochs", "1"]) == 0
    assert main(["train", "--arch", "vgg16", "--epochs", "1"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(sorted(p.name for p in r.iterdir()) == ["vgg16.json", "vgg16.safetensors"] for r in runs)
    assert shipped() == before
    card = json.loads((runs[0] / "vgg16.json").read_text())
    assert "weights_sha256" in card and card["nad"] == {}
    load_network("vgg16", weights=str(runs[0] / "vgg16.safetensors"))  # card and weights agree


def test_an_explicit_out_replaces_the_pair_keeping_the_nad_defaults(tmp_path, stub, capsys):
    out = tmp_path / "models"
    out.mkdir()
    (out / "vgg16.json").write_text(json.dumps({"arch": "vgg16", "nad": {"beta": 0.5}}))
    (out / "other.txt").write_text("kept")
    assert main(["train", "--arch", "vgg16", "--out", str(out)]) == 0
    assert json.loads((out / "vgg16.json").read_text())["nad"] == {"beta": 0.5}
    assert (out / "other.txt").read_text() == "kept" and not list(out.glob(".*.tmp"))


def test_a_cut_between_the_two_files_is_caught_on_load(tmp_path, stub, monkeypatch, capsys):
    out = tmp_path / "models"
    assert main(["train", "--arch", "vgg16", "--out", str(out), "--seed", "1"]) == 0
    real = os.replace

    def cut(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        T.train_network("vgg16", out=out)  # new weights renamed in, the card not
    monkeypatch.undo()
    assert main(["disentangle", "--arch", "vgg16", "--weights", str(out / "vgg16.safetensors"), "--out",
                 str(tmp_path / "r")]) == 2
    assert "do not match their card" in capsys.readouterr().err


def test_a_new_folder_appears_whole_or_not_at_all(tmp_path, stub, monkeypatch):
    out = tmp_path / "fresh"
    real = os.replace

    def cut(src, dst):
        if str(dst) == str(out):
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        T.train_network("vgg16", out=out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_train_arguments_are_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for argv, words in ((["train", "--arch", "vgg16", "--epochs", "0"], "epochs and batch must be"),
                        (["train", "--arch", "vgg16", "--out", str(tmp_path / "f")], "is a file"),
                        (["train", "--arch", "lenet"], "unknown arch")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err


def test_permuted_labels_train_on_a_subset_without_augmentation_and_say_so(tmp_path):
    """The data-randomisation network: the first N images, their labels permuted once by the
    seed, and a card that records the subset, the seed and the accuracy on those labels."""
    card = T.train_network("vgg16", epochs=1, batch=64, permute_labels=3, subset=128, out=tmp_path / "p")
    assert card["subset"] == 128 and card["permuted_labels_seed"] == 3
    assert 0 <= card["train_accuracy"] <= 1
    saved = json.loads((tmp_path / "p" / "vgg16.json").read_text())
    assert saved["train_accuracy"] == card["train_accuracy"]
    with pytest.raises(Exception, match="--subset must be at least"):
        T.train_network("vgg16", epochs=1, batch=64, subset=10, out=tmp_path / "q")
