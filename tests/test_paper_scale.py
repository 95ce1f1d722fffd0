"""Paper scale on a CPU: torchvision networks with random weights, ImageNet-style folders of
generated images, torchrun with two processes, and a run killed with SIGKILL then resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from payload import Payload
from PIL import Image

from nadkit.errors import NadkitError
from nadkit.imagefolder import ImageFolderData
from nadkit.networks import load_network
from nadkit.points import mask_points, point_widths
from nadkit.subarch import SubArchitectures

POINTS = {"vgg16": 13, "resnet50": 17, "densenet121": 8, "darts": 16}
WIDTHS = {"vgg16": [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512],
          "resnet50": [64] + [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3,
          "densenet121": [64, 256, 128, 512, 256, 1024, 512, 1024]}
NADKIT = [sys.executable, "-m", "nadkit"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", POINTS)
def test_paper_networks_have_the_authors_points(arch):
    model = load_network(arch, "imagefolder:/nowhere", weights="none")
    points = mask_points(arch, model)
    assert len(points) == POINTS[arch]
    widths = point_widths(model, points, (3, 64, 64))
    if arch in WIDTHS:
        assert widths == WIDTHS[arch]
    else:
        assert widths[:2] == [48, 48] and len(widths) == 16  # DARTS: stems, then cells of 4 nodes


def test_torchvision_names():
    names = [p.module for p in mask_points("vgg16", load_network("vgg16", "imagefolder:/x", weights="none"))]
    # after each ReLU, but a block's last conv after the block's pooling (the authors' choice)
    assert names == [f"features.{i}" for i in (1, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27)] + ["avgpool"]


def test_missing_torchvision_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(NadkitError, match="IMAGENET1K_V1"):
        load_network("resnet50", "imagefolder:/x", weights="torchvision")


@pytest.mark.slow
def test_pth_weights_are_read_with_weights_only(tmp_path):
    model = load_network("resnet50", "imagefolder:/x", weights="none", num_classes=4)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    again = load_network("resnet50", "imagefolder:/x", weights=str(tmp_path / "w.pth"), num_classes=4)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(NadkitError, match="do not fit the vgg16"):
        load_network("vgg16", "imagefolder:/x", weights=str(tmp_path / "w.pth"), num_classes=4)


def test_a_pth_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker, evil = tmp_path / "marker", tmp_path / "evil.pth"
    torch.save({"conv1.weight": Payload(marker)}, evil)
    torch.load(evil, weights_only=False)  # the payload is real: a plain load runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(NadkitError, match="not a readable plain state dict"):
        load_network("resnet50", "imagefolder:/x", weights=str(evil), num_classes=4)
    assert not marker.exists()


@pytest.fixture
def folder(tmp_path):
    """ROOT/{train,val}/<class>/*.png: four classes of coloured noise, and one corrupt image."""
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 6), ("val", 3)):
        for c, name in enumerate(("n01", "n02", "n03", "n04")):
            d = tmp_path / split / name
            d.mkdir(parents=True)
            for i in range(n):
                px = (torch.rand(40, 40, 3, generator=gen) * 60 + 60 * c).byte().numpy()
                Image.fromarray(px).save(d / f"{i}.png")
    (tmp_path / "train" / "n02" / "9.jpg").write_bytes(b"not a jpeg")
    return tmp_path


@pytest.mark.slow
def test_image_folder_layout_transforms_and_bad_files(folder, tmp_path):
    data = ImageFolderData(folder, "train", image_size=32, augment=True)
    assert data.class_names == ["n01", "n02", "n03", "n04"] and len(data) == 25
    bad = data.files.index(str(folder / "train" / "n02" / "9.jpg"))
    with pytest.warns(UserWarning, match="unreadable"):
        x = data.load(torch.tensor([0, bad]), train=True, seeds=torch.tensor([1, 2]))
    assert x.shape == (2, 3, 32, 32)
    with pytest.warns(UserWarning, match="unreadable"):
        assert data.read(bad, train=False)[1] == 1  # replaced by the next image of its class, and counted
    a = data.load(torch.tensor([0]), train=True, seeds=torch.tensor([5]))
    assert torch.equal(a, data.load(torch.tensor([0]), train=True, seeds=torch.tensor([5])))  # seeded crops
    (folder / "train" / "empty").mkdir()
    with pytest.raises(NadkitError, match="empty has no images"):
        ImageFolderData(folder, "train")
    with pytest.raises(NadkitError, match="ImageNet and Places365 layout"):
        ImageFolderData(tmp_path / "nothing", "train")


@pytest.mark.slow
def test_disentangle_and_evaluate_an_image_folder(folder, tmp_path):
    out = tmp_path / "run"
    common = ["--dataset", f"imagefolder:{folder}", "--weights", "none", "--image-size", "32"]
    run = subprocess.run(NADKIT + ["disentangle", "--arch", "resnet50", "--classes", "n01,n02,n03,n04", "--steps", "3",
                                   "--batch-per-class", "4", "--workers", "2", "--out", str(out)] + common,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    sub = SubArchitectures.load(out)
    assert sub.class_names == ["n01", "n02", "n03", "n04"] and sub.config["image_size"] == 32
    # the corrupt n02 image is drawn in the first pass over the class's 7 files: skipped and counted
    assert sub.status["1"]["unreadable_images"] >= 1 and sub.status["0"]["unreadable_images"] == 0
    ev = subprocess.run(NADKIT + ["evaluate", str(out), "--mosaics", "4"], capture_output=True, text=True)
    assert ev.returncode == 0 and "layer4.2" in ev.stdout, ev.stderr[-2000:]
    on_device = subprocess.run(NADKIT + ["disentangle", "--arch", "resnet50", "--classes", "n01,n02", "--steps", "2",
                                         "--batch-per-class", "4", "--decode", "device", "--out", str(tmp_path / "dev")]
                               + common, capture_output=True, text=True)  # PNGs: read by workers, PIL fallback
    assert on_device.returncode == 0, on_device.stderr[-2000:]
    assert SubArchitectures.load(tmp_path / "dev").config["decode"] == "device"
    missing = subprocess.run(NADKIT + ["disentangle", "--arch", "resnet50", "--classes", "n09", "--out", str(out)] + common,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "'n09' is neither" in missing.stderr


FAST = ["--arch", "vgg16", "--classes", "0,3,6,9", "--steps", "3", "--batch-per-class", "4"]


@pytest.mark.slow
def test_torchrun_with_two_processes_writes_what_one_process_writes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(NADKIT + ["disentangle", "--out", str(one)] + FAST, check=True, capture_output=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "nadkit", "disentangle", "--out", str(two)] + FAST, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = SubArchitectures.load(one), SubArchitectures.load(two)
    assert a.classes == b.classes and a.config == b.config
    assert all(torch.equal(a.masks[p], b.masks[p]) for p in a.points)
    assert not (two / "partial").exists()


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_result(tmp_path):
    args = ["--arch", "vgg16", "--classes", "1,4,7", "--steps", "40", "--class-batch", "1"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(NADKIT + ["disentangle", "--out", str(whole)] + args, check=True, capture_output=True)
    proc = subprocess.Popen(NADKIT + ["disentangle", "--out", str(cut)] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = cut / "partial" / "class-1.safetensors"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (cut / "meta.json").exists()
    done_before = sorted(p.name for p in (cut / "partial").glob("class-*"))
    subprocess.run(NADKIT + ["disentangle", "--out", str(cut)] + args, check=True, capture_output=True)
    a, b = SubArchitectures.load(whole), SubArchitectures.load(cut)
    assert all(torch.equal(a.masks[p], b.masks[p]) for p in a.points)
    assert json.loads((cut / "meta.json").read_text())["classes"] == [1, 4, 7]
    assert len(done_before) < 3


@pytest.mark.slow
def test_cuda_asked_for_but_absent(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    run = subprocess.run(NADKIT + ["disentangle", "--device", "cuda", "--out", "x"] + FAST, capture_output=True, text=True)
    assert run.returncode == 2 and "CUDA is not available" in run.stderr


@pytest.mark.slow
def test_decoding_on_the_device_matches_the_pil_path(tmp_path):
    """JPEGs decoded by torchvision.io (nvJPEG on a GPU; libjpeg here) with the transforms applied on
    the device: the same crops as the PIL path (same seeds), nearly the same pixels; a corrupt
    file falls back to the PIL path, which replaces and counts it."""
    from nadkit.imagefolder import decode_on

    gen = torch.Generator().manual_seed(1)
    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(3):
            smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 8, generator=gen), size=(60, 80), mode="bilinear")
            Image.fromarray((smooth[0].permute(1, 2, 0) * 255).byte().numpy()).save(tmp_path / "train" / c / f"{i}.jpg", quality=95)
    (tmp_path / "train" / "b" / "9.jpg").write_bytes(b"\xff\xd8 corrupt")
    data = ImageFolderData(tmp_path, "train", image_size=32, augment=True)
    from torchvision.io import read_file

    idx, seeds = torch.tensor([0, 1, 4]), torch.tensor([11, 12, 13])
    raw = [read_file(data.files[i]) for i in idx]
    for train in (True, False):
        x, skipped = decode_on(torch.device("cpu"), data, raw, idx, seeds, train)
        ref = data.load(idx, train, seeds)
        assert x.shape == ref.shape == (3, 3, 32, 32) and skipped.tolist() == [0, 0, 0]
        assert (x - ref).abs().mean() < 0.05  # same crop; decoders and resamplers differ in the last bits
    bad = data.files.index(str(tmp_path / "train" / "b" / "9.jpg"))
    with pytest.warns(UserWarning, match="unreadable"):
        x, skipped = decode_on(torch.device("cpu"), data, [read_file(data.files[bad])], torch.tensor([bad]),
                               torch.tensor([3]), True)
    assert skipped.tolist() == [1] and x.shape == (1, 3, 32, 32)
