"""Networks by string (torchvision:NAME, timm:NAME, package.module:function) and their mask points:
the auto rule on real architectures, hand-picked points and their checks, and a whole run."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from nadkit.cli import main
from nadkit.errors import NadkitError
from nadkit.findpoints import auto_points, probe
from nadkit.networks import load_network
from nadkit.subarch import SubArchitectures


class TinyNet(nn.Module):
    """A network of one's own (``--arch test_anynet:TinyNet``): a stem, a block, a conv whose output
    an in-place ReLU changes, and a ReLU module used twice."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, padding=1))
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.shared = nn.ReLU()
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.block(self.stem(x))
        x = self.shared(self.act(self.conv(x)) + self.shared(x))
        return self.head(x.mean((2, 3)))


def not_a_network():
    return "a string"


def run_cli(capsys, argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    if code == 2:
        lines = [ln for ln in out.err.splitlines() if ln.strip() and not ln.startswith("NAD")]
        assert len(lines) == 1 and lines[0].startswith("nadkit: error:"), out.err
    assert "Traceback" not in out.err
    return code, out.out + out.err


# the auto rule on torchvision's architectures: the stem, every block of the family, the last map
FAMILIES = {
    "mobilenet_v3_small": ("features.0", "InvertedResidual", "features.12"),
    "efficientnet_b0": ("features.0", "MBConv", "features.8"),
    "convnext_tiny": ("features.0", "CNBlock", "features.7.2"),
    "regnet_y_400mf": ("stem", "ResBottleneckBlock", "trunk_output.block4.block4-5"),
    "resnet18": ("maxpool", "BasicBlock", "layer4.1"),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_auto_points_pick_stem_blocks_and_last_map(name):
    model = load_network(f"torchvision:{name}", "imagefolder:/x", weights="none", num_classes=4)
    points = [p.module for p in auto_points(model, (3, 64, 64))]
    stem, block, last = FAMILIES[name]
    blocks = [n for n, m in model.named_modules() if type(m).__name__ == block]
    assert points[0] == stem and points[-1] == last
    assert set(blocks) - {last} <= set(points), set(blocks) - set(points)
    outputs = probe(model, (3, 64, 64))
    assert all(len(outputs[p].shape) == 4 and outputs[p].problem is None for p in points)


@pytest.mark.slow
def test_auto_points_keep_the_authors_on_their_networks():
    for arch in ("vgg16", "resnet50", "darts"):
        model = load_network(arch)
        from nadkit.points import mask_points

        assert [p.module for p in auto_points(model, (1, 32, 32))] == [p.module for p in mask_points(arch, model)]


def test_auto_points_on_a_timm_network():
    pytest.importorskip("timm")
    model = load_network("timm:resnet18", "imagefolder:/x", weights="none", num_classes=4)
    points = [p.module for p in auto_points(model, (3, 64, 64))]
    assert points == ["maxpool"] + [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]


def test_auto_points_avoid_in_place_and_shared_modules():
    outputs = probe(TinyNet(), (1, 32, 32))
    assert outputs["conv"].changed_in_place and outputs["shared"].calls == 2
    assert [p.module for p in auto_points(TinyNet(), (1, 32, 32))] == ["stem", "block.2", "block.3", "act"]


@pytest.mark.parametrize("argv, words", [
    (["--arch", "torchvision:nope"], "no classification model"),
    (["--arch", "torchvision:"], "malformed"),
    (["--arch", "timm:no_such_net_at_all"], "timm"),
    (["--arch", "no_such_package.nets:build"], "cannot import"),
    (["--arch", "os:no_such_function"], "no callable"),
    (["--arch", "test_anynet:not_a_network"], "not a torch.nn.Module"),
    (["--arch", "test_anynet:TinyNet", "--points", "blok"], "no module 'blok'; did you mean block"),
    (["--arch", "test_anynet:TinyNet", "--points", "head"], "not [batch, channels, H, W]"),
    (["--arch", "test_anynet:TinyNet", "--points", "conv"], "changed in place"),
    (["--arch", "test_anynet:TinyNet", "--points", "shared"], "runs 2 times"),
    (["--arch", "test_anynet:TinyNet", "--points", "stem,stem"], "twice"),
    (["--arch", "test_anynet:TinyNet", "--points", ","], "names no module"),
])
@pytest.mark.slow
def test_bad_networks_and_points_are_one_line(capsys, tmp_path, argv, words):
    code, text = run_cli(capsys, ["disentangle", *argv, "--classes", "0,1", "--steps", "1",
                                  "--out", tmp_path / "run"])
    assert code == 2 and words in text
    assert not (tmp_path / "run" / "meta.json").exists()


@pytest.mark.slow
def test_points_lists_candidates_and_how_auto_differs(capsys):
    code, text = run_cli(capsys, ["points", "--arch", "densenet121"])
    assert code == 0 and "features.denseblock1" in text and "after the network's functional ReLU" in text
    code, text = run_cli(capsys, ["points", "--arch", "vgg16"])
    assert code == 0 and "auto picks the authors' points" in text
    code, text = run_cli(capsys, ["points", "--arch", "test_anynet:TinyNet"])
    assert code == 0 and "changed in place later" in text and "runs 2x" in text and "*  act" in text


@pytest.mark.slow
def test_own_network_runs_evaluates_and_resumes(capsys, tmp_path):
    out = tmp_path / "tiny"
    argv = ["disentangle", "--arch", "test_anynet:TinyNet", "--classes", "0,1,2,3", "--steps", "3",
            "--batch-per-class", "4", "--out", out]
    assert run_cli(capsys, argv)[0] == 0
    sub = SubArchitectures.load(out)
    assert sub.points == ["stem", "block.2", "block.3", "act"] and sub.config["points"] == sub.points
    first = (out / "masks.safetensors").read_bytes()
    assert run_cli(capsys, argv)[0] == 0 and (out / "masks.safetensors").read_bytes() == first
    code, text = run_cli(capsys, ["evaluate", out, "--mosaics", "4"])
    assert code == 0 and "act" in text


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 3), ("val", 2)):
        for c, name in enumerate(("n01", "n02")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                px = (torch.rand(40, 40, 3, generator=gen) * 60 + 90 * c).byte().numpy()
                Image.fromarray(px).save(root / split / name / f"{i}.png")
    return root


@pytest.mark.parametrize("arch", ["torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0",
                                  "torchvision:convnext_tiny", "torchvision:regnet_y_400mf", "timm:resnet18"])
@pytest.mark.slow
def test_networks_by_string_run_on_an_image_folder(capsys, tmp_path, images, arch):
    if arch.startswith("timm:"):
        pytest.importorskip("timm")
    out = tmp_path / "run"
    argv = ["disentangle", "--arch", arch, "--weights", "none", "--dataset", f"imagefolder:{images}",
            "--image-size", "32", "--classes", "0,1", "--steps", "2", "--batch-per-class", "2", "--out", out]
    assert run_cli(capsys, argv)[0] == 0
    meta = json.loads((out / "meta.json").read_text())
    model = load_network(arch, "imagefolder:/x", weights="none", num_classes=2)
    assert meta["config"]["arch"] == arch
    assert meta["config"]["points"] == meta["points"] == [p.module for p in auto_points(model, (3, 32, 32))]
    assert run_cli(capsys, argv)[0] == 0  # a finished run is reused
    assert run_cli(capsys, ["evaluate", out])[0] == 0


@pytest.mark.slow
def test_a_torchvision_network_on_gray_fashion_mnist(capsys, tmp_path):
    argv = ["disentangle", "--arch", "torchvision:mobilenet_v3_small", "--weights", "none", "--classes", "0,1",
            "--steps", "2", "--batch-per-class", "2", "--out", tmp_path / "gray"]
    assert run_cli(capsys, argv)[0] == 0
    assert json.loads((tmp_path / "gray" / "meta.json").read_text())["config"]["points"][0] == "features.0"


@pytest.mark.slow
def test_weights_from_a_file_or_the_torchvision_cache(capsys, tmp_path, monkeypatch):
    from nadkit.anynet import cached_weights
    from nadkit.networks import weights_sha256

    net = load_network("torchvision:mobilenet_v3_small", "imagefolder:/x", weights="none", num_classes=1000)
    torch.manual_seed(3)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "mine.pth")
    mine = load_network("torchvision:mobilenet_v3_small", "imagefolder:/x", weights=tmp_path / "mine.pth")
    assert all(torch.equal(mine.state_dict()[k], v) for k, v in state.items())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(NadkitError, match="nothing is downloaded"):
        cached_weights("torchvision:mobilenet_v3_small")
    import torchvision

    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"  # under TORCH_HOME
    checkpoints.mkdir(parents=True)
    url = torchvision.models.get_model_weights("mobilenet_v3_small").DEFAULT.url
    torch.save(state, checkpoints / url.rsplit("/", 1)[1])
    cached = load_network("torchvision:mobilenet_v3_small", "imagefolder:/x")
    assert weights_sha256(cached) == weights_sha256(mine)
    torch.save({"features.0.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    code, text = run_cli(capsys, ["disentangle", "--arch", "torchvision:mobilenet_v3_small", "--weights",
                                  tmp_path / "other.pth", "--classes", "0", "--steps", "1", "--out", tmp_path / "x"])
    assert code == 2 and "do not fit" in text
