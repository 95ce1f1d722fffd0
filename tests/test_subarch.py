import json
from pathlib import Path

import pytest
import torch

from nadkit import pipeline
from nadkit.errors import NadkitError
from nadkit.networks import build_network
from nadkit.points import mask_points
from nadkit.subarch import SubArchitectures


def make(classes=(0, 1), widths=(4, 6)):
    g = torch.Generator().manual_seed(0)
    masks = {f"p{i}": torch.rand(len(classes), w, generator=g) for i, w in enumerate(widths)}
    return SubArchitectures(masks, list(classes), [f"c{c}" for c in classes], {"arch": "x", "beta": 0.1},
                            {str(c): {"state": "done"} for c in classes})


def test_save_load_roundtrip(tmp_path):
    sub = make()
    sub.save(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["points"] == ["p0", "p1"] and meta["classes"] == [0, 1] and "nadkit" in meta
    back = SubArchitectures.load(tmp_path / "r")
    assert back.points == sub.points and back.config == sub.config and back.status == sub.status
    assert all(torch.equal(back.masks[k], sub.masks[k]) for k in sub.masks)
    assert back.kept().shape == (2, 2) and back.binary()[0].dtype == torch.bool


def test_corrupt_or_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(NadkitError, match="no meta.json"):
        SubArchitectures.load(tmp_path)
    make().save(tmp_path)
    (tmp_path / "masks.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(NadkitError, match="does not match meta.json"):
        SubArchitectures.load(tmp_path)
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(NadkitError, match="corrupt"):
        SubArchitectures.load(tmp_path)


def test_masks_from_another_network_are_refused():
    model = build_network("resnet50").eval()
    points = mask_points("resnet50", model)
    vgg_points = mask_points("vgg16")
    sub = SubArchitectures({p.name: torch.rand(2, 8) for p in vgg_points}, [0, 1], ["a", "b"], {}, {})
    with pytest.raises(NadkitError, match="other mask points"):
        sub.check(model, points, (1, 32, 32))
    sub = SubArchitectures({p.name: torch.rand(2, 8) for p in points}, [0, 1], ["a", "b"], {}, {})
    with pytest.raises(NadkitError, match="channels"):
        sub.check(model, points, (1, 32, 32))


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    spec = pipeline.Spec("vgg16", classes="2,5,8", beta=0.02, steps=4, batch_per_class=4, class_batch=1)
    whole = pipeline.disentangle(spec, tmp_path / "whole", progress=False)

    from nadkit import disentangle as D
    real_fit_chunk = D.NAD._fit_chunk
    calls = []

    def crash_after_first(self, *args):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_fit_chunk(self, *args)

    monkeypatch.setattr(D.NAD, "_fit_chunk", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        pipeline.disentangle(spec, tmp_path / "cut", progress=False)
    assert [p.name for p in (tmp_path / "cut" / "partial").glob("class-*")] == ["class-2.safetensors"]
    monkeypatch.setattr(D.NAD, "_fit_chunk", real_fit_chunk)
    resumed = pipeline.disentangle(spec, tmp_path / "cut", progress=False)
    assert all(torch.equal(resumed.masks[k], whole.masks[k]) for k in whole.masks)
    assert not (tmp_path / "cut" / "partial").exists()


def flip_bit(path, at):
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 1
    path.write_bytes(bytes(data))


def test_a_changed_masks_file_is_refused(tmp_path):
    make().save(tmp_path)
    flip_bit(tmp_path / "masks.safetensors", -3)  # inside the tensor data: still a readable file
    with pytest.raises(NadkitError, match="sha256 differs"):
        SubArchitectures.load(tmp_path)


def test_a_save_cut_before_meta_json_leaves_no_result_not_a_mixed_one(tmp_path, monkeypatch):
    import os

    make().save(tmp_path)
    other = make(widths=(4, 6))
    other.masks = {k: 1 - v for k, v in other.masks.items()}
    real = os.replace

    def cut(src, dst):
        if str(dst).endswith("meta.json"):
            raise KeyboardInterrupt  # the process dies between the two renames
        real(src, dst)

    monkeypatch.setattr(os, "replace", cut)
    with pytest.raises(KeyboardInterrupt):
        other.save(tmp_path)
    monkeypatch.setattr(os, "replace", real)
    with pytest.raises(NadkitError, match="no meta.json"):
        SubArchitectures.load(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_rename_follows_an_fsync_of_the_file_and_is_made_durable(tmp_path, monkeypatch):
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1])
    make().save(tmp_path)
    assert events == ["fsync", "replace masks.safetensors", "fsync", "fsync", "replace meta.json", "fsync"]
    events.clear()
    pipeline.PartialRun(tmp_path, {"a": 1}).save(3, make().masks, {"state": "done"})
    assert events == ["fsync", "replace config.json", "fsync", "fsync", "replace class-3.safetensors", "fsync"]


@pytest.mark.parametrize("meta, words", [
    ([1, 2], "not an object"),
    ("text", "not an object"),
    ({"points": [], "classes": [], "config": {}, "status": {}, "files": {}}, "'class_names' missing"),
    ({"points": [], "classes": [], "class_names": [], "status": {}, "files": {}}, "'config' missing"),
    ({"points": [], "classes": [], "class_names": [], "config": {}, "files": {}}, "'status' missing"),
    ({"points": [], "classes": [], "class_names": [], "config": {}, "status": {}}, "older nadkit"),
    ({"points": [], "classes": [0], "class_names": [], "config": {}, "status": {}, "files": {}}, "malformed"),
])
def test_a_malformed_meta_json_is_one_line(tmp_path, meta, words):
    make().save(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(NadkitError, match=words) as e:
        SubArchitectures.load(tmp_path)
    assert "\n" not in str(e.value)


def test_damaged_or_foreign_partial_files_are_computed_again(tmp_path):
    from pathlib import Path as P

    cfg = {"arch": "x", "beta": 0.1}
    part = pipeline.PartialRun(tmp_path, cfg)
    for c in (0, 1, 2, 3):
        part.save(c, {"p0": torch.full((4,), float(c))}, {"state": "done"})
    files = {c: P(tmp_path, "partial", f"class-{c}.safetensors") for c in range(4)}
    files[0].write_bytes(files[0].read_bytes()[:-5])          # truncated
    flip_bit(files[1], -2)                                     # bit flipped in the masks
    other = pipeline.PartialRun(tmp_path / "o", {"arch": "y"})  # another run's class file
    other.save(2, {"p0": torch.zeros(4)}, {"state": "done"})
    files[2].write_bytes(P(tmp_path, "o", "partial", "class-2.safetensors").read_bytes())
    (tmp_path / "partial" / "config.json").write_text("{tru")  # a corrupt config.json loses nothing
    assert pipeline.PartialRun(tmp_path, cfg, create=False).done() == [3]
    with pytest.raises(NadkitError, match="damaged or of another run"):
        pipeline.PartialRun(tmp_path, cfg, create=False).load(1)
    resumed = pipeline.PartialRun(tmp_path, cfg)
    assert resumed.done() == [3] and sorted(p.name for p in (tmp_path / "partial").iterdir()) == [
        "class-3.safetensors", "config.json"]
    assert torch.equal(resumed.load(3)[0]["p0"], torch.full((4,), 3.0))
