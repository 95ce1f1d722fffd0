import json

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
    with pytest.raises(NadkitError, match="not a readable safetensors"):
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
