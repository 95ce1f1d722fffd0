"""nadkit in a researcher's hands (issue 36): results readable in Python (repr, summary() = the CLI's
table, to_frame(), equality), every bad input refused in one line or warned about where it enters the
library, the CLI's warnings through ``warnings``, the output selector, and the automatic point rule
on a small residual CNN."""

import contextlib
import io
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import nadkit
from nadkit import MaskPoint, NadkitError
from nadkit.cli import print_report


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """The issue's network: a stem, two residual blocks with BatchNorm, global pooling."""

    def __init__(self, classes=4, tuple_out=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block1, self.block2 = Block(8), Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)
        self.tuple_out = tuple_out

    def forward(self, x):
        f = self.pool(self.block2(self.block1(self.stem(x))))
        logits = self.fc(f.flatten(1))
        return (logits, f) if self.tuple_out else logits


def data(n=32, classes=4):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.arange(n) % classes)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    model, ds = ResNet(), data()
    points = nadkit.mask_points(model, ds.tensors[0][:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subs = nadkit.NAD(model, points, beta=0.5, steps=3, batch_per_class=4, target="prediction").fit(
            ds, progress=False)
        report = subs.evaluate(model, ds, mosaics=3, chance_draws=19)
        ablation = subs.ablate(model, ds, draws=3, popularity_draws=2, per_class=4)
    return model, ds, subs, report, ablation


def test_auto_points_keep_the_last_block_not_the_global_pool():
    points = nadkit.mask_points(ResNet(), (3, 8, 8))
    modules = [p.module for p in points]
    assert "block2" in modules and "pool" not in modules, modules
    assert "block1" in modules


def test_reprs_fit_a_screen_and_name_the_headline(fitted):
    _, _, subs, report, ablation = fitted
    for obj, what in ((subs, "SubArchitectures"), (report, "Evaluation"), (ablation, "Ablation")):
        text = repr(obj)
        assert text.startswith(f"<{what}") and len(text) < 400 and "\n" not in text and "tensor(" not in text, text
    assert "4 classes" in repr(report) and "balanced" in repr(report)


def test_summary_is_the_cli_table(fitted):
    _, _, subs, report, ablation = fitted
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_report(report.to_dict())
    assert report.summary() == out.getvalue().rstrip("\n")
    assert "0.5: a constant answer" in report.summary() and "nan" not in report.summary()
    assert "selectivity" in ablation.summary() and "nan" not in ablation.summary()
    assert "steps" in subs.summary()


def test_to_frame(fitted):
    _, _, subs, report, ablation = fitted
    per_class, per_point = report.to_frame()
    assert list(per_class.index) == subs.class_names and list(per_point.index) == subs.points
    assert {"own_class_accuracy", "others_named", "balanced_accuracy"} <= set(per_class.columns)
    assert {"kept", "kappa", "hit_rate", "note"} <= set(per_point.columns)
    per_class, per_point = subs.to_frame()
    assert len(per_class) == 4 and len(per_point) == len(subs.points)
    assert len(ablation.to_frame()) == 4 * len(subs.points)


def test_equality_compares_masks(fitted, tmp_path):
    _, _, subs, _, _ = fitted
    loaded = nadkit.SubArchitectures.load(subs.save(tmp_path / "r"))
    assert subs == loaded
    loaded.masks[loaded.points[0]] = loaded.masks[loaded.points[0]] * 0.5
    assert subs != loaded and subs != "not a result"


def test_misjudgment_line_without_misjudged_images():
    from nadkit.results import report_text

    r = {"arch": None, "classes": [0, 1], "class_names": ["a", "b"], "points": ["p"], "kept": [1.0],
         "similarity": [1.0], "similarity_expected": [1.0], "similarity_kappa": [None], "hit_rate": None,
         "mosaics": 0, "top": 0.05, "hit_protocol": "paper",
         "accuracy": {"original": [1.0, 1.0], "subarch": [1.0, 1.0], "subarch_others": [0.0, 0.0],
                      "subarch_balanced": [1.0, 1.0]},
         "misjudgment": {"mis": float("nan"), "oth": float("nan"), "dif": float("nan"), "classes": []}}
    text = report_text(r)
    assert "no misjudged image" in text and "nan" not in text.lower().replace("no misjudged", "")
    assert "keeps every channel" in text


def test_tuple_output_with_the_selector():
    torch.manual_seed(0)
    model, ds = ResNet(tuple_out=True), data()
    with pytest.raises(NadkitError, match="output=") as e:
        nadkit.NAD(model, nadkit.mask_points(model, (3, 8, 8)), beta=0.5, steps=2).fit(ds, progress=False)
    assert len(str(e.value).splitlines()) == 1
    points = nadkit.mask_points(model, (3, 8, 8), output=0)
    assert points.output == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subs = nadkit.NAD(model, points, beta=0.5, steps=2, batch_per_class=4, target="prediction").fit(
            ds, progress=False)
        report = subs.evaluate(model, ds, mosaics=2, chance_draws=9)
    assert subs.config["output"] == 0 and len(report.accuracy.subarch) == 4
    assert isinstance(model(ds.tensors[0][:2]), tuple)  # the user's model is left as it was


def test_named_points():
    model = ResNet()
    points = nadkit.mask_points(model, (3, 8, 8), names=["block1", "block2"])
    assert [p.module for p in points] == ["block1", "block2"] and points.rule == "named"
    with pytest.raises(NadkitError, match="no module"):
        nadkit.mask_points(model, (3, 8, 8), names=["block9"])


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(self.conv(self.conv(x)).mean((2, 3)))


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean((2, 3)))  # the ReLU overwrites conv's output


class Softmaxed(ResNet):
    def forward(self, x):
        return super().forward(x).softmax(1)


def fit(model=None, points=None, ds=None, **kw):
    model = model if model is not None else ResNet()
    points = points if points is not None else nadkit.mask_points(model, (3, 8, 8))
    nad = nadkit.NAD(model, points, **({"beta": 0.5, "steps": 2, "batch_per_class": 2} | kw))
    return nad.fit(ds if ds is not None else data(), classes=[0, 1], progress=False)


def float_labels():
    ds = data()
    return TensorDataset(ds.tensors[0], ds.tensors[1].float() + 0.5)


def nan_images():
    ds = data()
    x = ds.tensors[0].clone()
    x[:] = float("nan")
    return TensorDataset(x, ds.tensors[1])


def meta_model():
    with torch.device("meta"):
        return ResNet()


ERRORS = {  # the bad inputs that are refused: what each gives (one line, a NadkitError)
    "classes=0 as an int": (lambda: nadkit.NAD(ResNet(), nadkit.mask_points(ResNet(), (3, 8, 8)), beta=0.5,
                                               steps=2).fit(data(), classes=0, progress=False), "list of class ids"),
    "model on the meta device": (lambda: nadkit.NAD(meta_model(), [MaskPoint("block2", "block2")]), "meta device"),
    "1-channel data in fit": (lambda: fit(ds=TensorDataset(torch.randn(8, 1, 8, 8), torch.arange(8) % 2)),
                              "1 channels, the network takes 3"),
    "dataset without labels": (lambda: fit(ds=TensorDataset(torch.randn(8, 3, 8, 8))), "no labels"),
    "float labels": (lambda: fit(ds=float_labels()), "not integer class ids"),
    "NaN images": (lambda: fit(ds=nan_images()), "NaN"),
    "tuple output without a selector": (lambda: fit(model=ResNet(tuple_out=True)), "output="),
    "point with a 2-D output": (lambda: fit(points=[MaskPoint("fc", "fc")]), "not a [batch, channels, H, W]"),
    "point that runs twice": (lambda: fit(model=Twice(), points=[MaskPoint("conv", "conv")]), "2 times"),
    "point changed in place": (lambda: fit(model=InPlace(), points=[MaskPoint("conv", "conv")]), "in place"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_is_one_line(name):
    call, expected = ERRORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NadkitError) as e:
            call()
    message = str(e.value)
    assert expected in message and len(message.splitlines()) == 1, message
    assert "--" not in message, message  # Python callers get Python remedies


def test_evaluate_refuses_other_weights_and_channels(fitted):
    model, ds, subs, _, _ = fitted
    other = ResNet()
    with pytest.raises(NadkitError, match="allow_other_weights=True"):
        subs.evaluate(other, ds, mosaics=2, chance_draws=9)
    with pytest.raises(NadkitError, match="allow_other_weights=True"):
        subs.ablate(other, ds, draws=2)
    with pytest.raises(NadkitError, match="1 channels, the network takes 3"):
        subs.evaluate(model, TensorDataset(torch.randn(8, 1, 8, 8), torch.arange(8) % 4), mosaics=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subs.evaluate(other, ds, mosaics=2, chance_draws=9, allow_other_weights=True)


WARNINGS = {  # the inputs that are warned about (through warnings, so they can be filtered)
    "untuned default beta": (lambda: nadkit.NAD(ResNet(), nadkit.mask_points(ResNet(), (3, 8, 8)), steps=2,
                                                batch_per_class=2).fit(data(), [0, 1], progress=False), "not tuned"),
    "uint8 images": (lambda: fit(ds=TensorDataset((torch.rand(32, 3, 8, 8) * 255).to(torch.uint8),
                                                  torch.arange(32) % 4)), "images.float() / 255"),
    "0-255 float images": (lambda: fit(ds=TensorDataset(torch.rand(32, 3, 8, 8) * 255, torch.arange(32) % 4)),
                           "0-255"),
    "softmax outputs": (lambda: fit(model=Softmaxed()), "sum to one"),
    "points keeping every channel": (lambda: nadkit.disentangle.warn_result(nadkit.SubArchitectures(
        {"a": torch.ones(2, 4), "b": torch.rand(2, 4)}, [0, 1], ["x", "y"], {}, {})), "keeps every channel"),
    "classes stopped at the step limit": (lambda: fit(steps="auto", convergence=nadkit.disentangle.Convergence(
        max_steps=2)), "step limit"),
    "classes that skipped their steps": (lambda: fit(target="label"), "skipped every step"),
}


@pytest.mark.parametrize("name", list(WARNINGS))
def test_questionable_input_warns(name):
    call, expected = WARNINGS[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
        except NadkitError:
            pass
    messages = [str(w.message) for w in caught]
    assert any(expected in m for m in messages), messages


def test_hit_rate_at_1x1_points_warns():
    torch.manual_seed(0)
    model, ds = ResNet(), data()
    points = nadkit.mask_points(model, (3, 8, 8), names=["block2", "pool"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subs = nadkit.NAD(model, points, beta=0.5, steps=2, batch_per_class=2, target="prediction").fit(
            ds, progress=False)
    with pytest.warns(UserWarning, match="1x1"):
        subs.evaluate(model, ds, mosaics=2, chance_draws=9)


def test_nadkit_evaluate_reuses_the_preprocessing_recorded_in_python(tmp_path, capsys):
    """A result saved from Python on an image folder with its own mean, std and resize: ``nadkit
    evaluate`` reads them from the result and reproduces the Python evaluation's accuracies."""
    import json

    from PIL import Image
    from safetensors.torch import save_file

    from nadkit import cli
    from nadkit.imagefolder import ImageFolderData

    gen = torch.Generator().manual_seed(0)
    root = tmp_path / "data"
    for split in ("train", "val"):
        for c in "abcd":
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                px = (torch.rand(44, 44, 3, generator=gen) * 255).byte().numpy()
                Image.fromarray(px).save(root / split / c / f"{i}.png")
    torch.manual_seed(0)
    model = nadkit.load_network("torchvision:resnet18", f"imagefolder:{root}", "none", num_classes=4)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    pre = dict(image_size=32, mean=[0.3, 0.4, 0.5], std=[0.2, 0.3, 0.25], resize=44)
    train, test = (ImageFolderData(root, s, **pre) for s in ("train", "val"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        subs = nadkit.NAD(model, nadkit.mask_points(model, (3, 32, 32)), beta=0.1, steps=1, batch_per_class=2,
                          target="prediction", engine=nadkit.Engine(input_shape=(3, 32, 32))).fit(train, progress=False)
        ours = subs.evaluate(model, test, mosaics=2, chance_draws=9)
    assert subs.config["preprocessing"]["mean"] == pre["mean"] and not subs.config["preprocessing"]["augment"]
    folder = subs.save(tmp_path / "mine")
    argv = ["evaluate", str(folder), "--arch", "torchvision:resnet18", "--weights", str(tmp_path / "w.safetensors"),
            "--dataset", f"imagefolder:{root}", "--mosaics", "2", "--json", str(tmp_path / "r.json")]
    capsys.readouterr()
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "preprocessing:" in err and "[0.3, 0.4, 0.5]" in err and "CenterCrop(32)" in err
    theirs = json.loads((tmp_path / "r.json").read_text())["accuracy"]
    assert theirs["original"] == pytest.approx(ours.accuracy.original)
    assert theirs["subarch"] == pytest.approx(ours.accuracy.subarch)
    # the options override what the result records
    assert cli.main(argv[:-2] + ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]) == 0
    assert "[0.5, 0.5, 0.5]" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--image-size", "0"], "image-size must be >= 32"),
    (["--workers", "-1"], "workers must be >= 0"),
])
def test_cli_arguments_are_checked_before_anything_is_printed(tmp_path, capsys, argv, expected):
    from nadkit import cli

    capsys.readouterr()
    code = cli.main(["disentangle", "--arch", "torchvision:resnet18", "--weights", "none", "--dataset",
                     f"imagefolder:{tmp_path}", "--out", str(tmp_path / "o")] + argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and expected in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err


def test_points_refuses_a_bad_image_size_in_one_line(capsys):
    from nadkit import cli

    capsys.readouterr()
    assert cli.main(["points", "--arch", "vgg16", "--image-size", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "image-size must be >= 32" in captured.err
