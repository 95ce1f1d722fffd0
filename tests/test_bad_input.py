"""Every bad input the issue lists ends in one line on stderr starting ``nadkit: error:`` and exit
status 2, before any work is lost or any finished result touched."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from payload import Payload

from nadkit import pipeline
from nadkit.cli import main
from nadkit.networks import MODELS_DIR, build_network

FAST = ["--steps", "2", "--batch-per-class", "2", "--classes", "0,1"]
VGG = ["disentangle", "--arch", "vgg16"]


def error_of(capsys, argv) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("nadkit: error:"), (code, err)
    assert "Traceback" not in err
    return err


def fingerprint(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A finished result of vgg16 on classes 0 and 1 (2 steps)."""
    out = tmp_path_factory.mktemp("result") / "run"
    assert main(VGG + FAST + ["--out", str(out)]) == 0
    return out


@pytest.fixture
def copy(result, tmp_path):
    shutil.copytree(result, tmp_path / "run")
    return tmp_path / "run"


def test_pth_files_that_are_not_plain_state_dicts(tmp_path, capsys):
    garbage, full, evil, odd = (tmp_path / n for n in ("garbage.pth", "full.pth", "evil.pth", "odd.pth"))
    garbage.write_bytes(b"\x80\x02garbage, not a pickle nor a zip")
    torch.save(build_network("vgg16"), full)  # a pickled module, not its state dict
    marker = tmp_path / "marker"
    torch.save({"features.conv1_1.weight": Payload(marker)}, evil)
    torch.save({"features.conv1_1.weight": 1.5}, odd)
    out = tmp_path / "out"
    for path in (garbage, full, evil):
        assert "not a readable plain state dict" in error_of(capsys, VGG + FAST + ["--weights", str(path), "--out", str(out)])
    assert "is not a tensor" in error_of(capsys, VGG + FAST + ["--weights", str(odd), "--out", str(out)])
    assert not marker.exists() and not out.exists()


@pytest.mark.slow
def test_a_pickled_module_is_refused_in_one_line_on_stderr(tmp_path):
    """From a real process: torch's warning about the pickle protocol does not reach the user."""
    import subprocess
    import sys

    full = tmp_path / "full.pth"
    torch.save(build_network("vgg16"), full)
    run = subprocess.run([sys.executable, "-m", "nadkit", *VGG, *FAST, "--weights", str(full),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_weights_with_nan_are_refused(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    state = load_file(str(MODELS_DIR / "vgg16.safetensors"))
    state["classifier.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    assert "NaN or infinite" in error_of(capsys, VGG + FAST + ["--weights", str(tmp_path / "nan.safetensors"),
                                                               "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("meta, words", [
    ("[1, 2, 3]", "not an object"),
    ("42", "not an object"),
    ("", "corrupt"),
    ('{"points": [], "classes"', "corrupt"),
])
@pytest.mark.slow
def test_meta_json_that_is_not_an_object(copy, capsys, meta, words):
    (copy / "meta.json").write_text(meta)
    assert words in error_of(capsys, ["evaluate", str(copy)])
    assert words in error_of(capsys, VGG + FAST + ["--out", str(copy)])  # and a re-run does not overwrite it


@pytest.mark.slow
@pytest.mark.parametrize("field", ["class_names", "config", "status", "points", "classes"])
def test_meta_json_without_a_field(copy, capsys, field):
    meta = json.loads((copy / "meta.json").read_text())
    del meta[field]
    (copy / "meta.json").write_text(json.dumps(meta))
    before = fingerprint(copy)
    assert f"{field!r} missing" in error_of(capsys, ["evaluate", str(copy)])
    assert f"{field!r} missing" in error_of(capsys, VGG + FAST + ["--out", str(copy)])
    assert fingerprint(copy) == before


@pytest.mark.slow
def test_out_naming_an_existing_file(tmp_path, capsys):
    out = tmp_path / "a-file"
    out.write_text("keep me")
    assert "is a file" in error_of(capsys, VGG + FAST + ["--out", str(out)])
    assert out.read_text() == "keep me"
    assert "no meta.json" in error_of(capsys, ["evaluate", str(out)])
    assert "no partial/" in error_of(capsys, ["merge", str(out)])
    assert "empty folder name" in error_of(capsys, VGG + FAST + ["--out", ""])  # not the current folder
    assert "empty folder name" in error_of(capsys, ["evaluate", ""])


def cut_run(tmp_path, monkeypatch) -> Path:
    """A run of classes 0 and 1 killed after both finished but before the merge."""
    out = tmp_path / "cut"

    def die(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "merge", die)
    assert main(VGG + FAST + ["--out", str(out)]) == 130
    monkeypatch.undo()
    assert sorted(p.name for p in (out / "partial").iterdir()) == ["class-0.safetensors", "class-1.safetensors",
                                                                   "config.json"]
    return out


@pytest.mark.slow
def test_corrupt_partial_config_json(tmp_path, capsys, monkeypatch):
    out = cut_run(tmp_path, monkeypatch)
    (out / "partial" / "config.json").write_text('{"arch": "vgg1')
    assert "config.json is corrupt" in error_of(capsys, ["merge", str(out)])
    saved = {n: (out / "partial" / n).read_bytes() for n in ("class-0.safetensors", "class-1.safetensors")}
    (out / "partial" / "config.json").write_text("[]")
    assert "config.json is corrupt" in error_of(capsys, ["merge", str(out)])
    # nothing lost: the same command resumes from the finished classes (their files carry the config)
    from nadkit import disentangle as D

    monkeypatch.setattr(D.NAD, "fit", lambda *a, **k: pytest.fail("finished classes computed again"))
    assert main(VGG + FAST + ["--out", str(out)]) == 0
    assert sorted(pipeline.SubArchitectures.load(out).classes) == [0, 1] and saved


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_corrupt_partial_class_file(tmp_path, capsys, monkeypatch, damage):
    out = cut_run(tmp_path, monkeypatch)
    path = out / "partial" / "class-1.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not safetensors at all")
    else:
        data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    assert "damaged or of another run" in error_of(capsys, ["merge", str(out)])
    assert main(VGG + FAST + ["--out", str(out)]) == 0  # the damaged class is computed again
    assert pipeline.SubArchitectures.load(out).classes == [0, 1]


@pytest.mark.slow
def test_truncated_elbow_json_is_computed_again(tmp_path, capsys):
    out = tmp_path / "elbow"
    spec = pipeline.Spec("vgg16", classes="0,1", beta="elbow", steps=2, batch_per_class=2)
    sweep = pipeline.elbow(spec, out, progress=False)
    text = (out / "elbow.json").read_text()
    for damaged in (text[: len(text) // 2], '{"key": 1, "sweep": 2}'):
        (out / "elbow.json").write_text(damaged)
        assert pipeline.elbow(spec, out, progress=False) == sweep
        assert json.loads((out / "elbow.json").read_text())["sweep"] == sweep


def test_a_device_beyond_the_gpus(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "o")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in error_of(capsys, VGG + FAST + ["--device", "cuda:9", "--out", out])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert "has 1 GPU(s)" in error_of(capsys, VGG + FAST + ["--device", "cuda:9", "--out", out])
    assert "unknown device" in error_of(capsys, VGG + FAST + ["--device", "cuda:x", "--out", out])
    assert "unknown device" in error_of(capsys, VGG + FAST + ["--device", "tpu", "--out", out])


@pytest.mark.parametrize("flag, value, words", [
    ("--workers", "-1", "workers must be >= 0"),
    ("--image-size", "0", "image-size must be >= 32"),
    ("--beta", "nan", "beta must be a finite number"),
    ("--beta", "inf", "beta must be a finite number"),
    ("--beta=-inf", None, "beta must be a finite number"),
    ("--lr", "nan", "lr must be > 0 and finite"),
    ("--lr", "inf", "lr must be > 0 and finite"),
])
def test_settings_refused_before_running(result, capsys, flag, value, words):
    before = fingerprint(result)
    assert words in error_of(capsys, VGG + FAST + [flag] + ([value] if value else []) + ["--out", str(result)])
    assert fingerprint(result) == before  # a finished result is untouched by a refused run


@pytest.mark.parametrize("argv", [
    VGG + ["--steps", "many", "--out", "x"],
    VGG + ["--beta", "--out", "x"],
    ["disentangle", "--out", "x"],
    ["evaluate"],
    ["frobnicate"],
    [],
])
def test_usage_errors_are_one_line_too(capsys, argv):
    assert "nadkit" in error_of(capsys, argv)
