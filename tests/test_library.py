"""nadkit as a library: NAD on a model and data of one's own (issue 24)."""

import json
import math
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import TensorDataset

import nadkit
from nadkit import NAD, NadkitError, SubArchitectures, cli, pipeline
from nadkit.disentangle import Convergence
from nadkit.settings import ENGINE_FIELDS, Engine
from nadkit.points import MaskPoint


class Net(nn.Module):
    """A small CNN of one's own: a stem and one block, 4 classes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return Net()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(40, 3, 12, 12, generator=g), torch.arange(40) % 4)


def points_of(model):
    return nadkit.mask_points(model, torch.zeros(1, 3, 12, 12))


BAD = [
    (dict(objective="oficial"), "unknown objective 'oficial'"),
    (dict(target="labels"), "unknown target"),
    (dict(beta=math.nan), "beta must be a finite number > 0"),
    (dict(beta=-1), "beta must be a finite number > 0"),
    (dict(beta=0), "beta must be a finite number > 0"),
    (dict(beta="elbo"), "or 'elbow'"),
    (dict(lr=0), "lr must be > 0"),
    (dict(lr=math.inf), "lr must be > 0 and finite"),
    (dict(steps=0), "steps must be 'auto' or an integer >= 1"),
    (dict(steps=2.5), "steps must be 'auto'"),
    (dict(batch_per_class=0), "batch-per-class must be"),
    (dict(precision="bf16 "), "unknown precision 'bf16 '"),
    (dict(device="tpu"), "unknown device 'tpu'"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(input_shape=(12, 12)), "input_shape must be one image's"),
    (dict(convergence=2000), "convergence must be"),
    (dict(snapshot_every=0), "snapshot_every must be"),
]


@pytest.mark.parametrize("kwargs,words", BAD, ids=[str(k) for k, _ in BAD])
def test_every_bad_argument_of_nad_is_one_line_that_says_what_to_do(net, kwargs, words):
    with pytest.raises(ValueError) as e:
        engine = {k: kwargs.pop(k) for k in list(kwargs) if k in ENGINE_FIELDS}
        NAD(net, points_of(net), engine=Engine(**engine), **kwargs)
    assert isinstance(e.value, NadkitError) and words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_bad_points_classes_and_shapes_are_one_line(net, data):
    with pytest.raises(NadkitError, match="points are not this model's"):
        NAD(net, [MaskPoint("conv1_1", "features.relu1_1")])
    with pytest.raises(NadkitError, match="non-empty list of MaskPoint"):
        NAD(net, [])
    with pytest.raises(NadkitError, match="listed twice"):
        NAD(net, [MaskPoint("a", "stem"), MaskPoint("a", "block")])
    nad = NAD(net, points_of(net), steps=1)
    with pytest.raises(NadkitError, match="class id 12 is out of range; this data set has classes 0..3"):
        nad.fit(data, classes=[0, 12], progress=False)
    with pytest.raises(NadkitError, match="lists? a class twice"):
        nad.fit(data, classes=[1, 1], progress=False)
    with pytest.raises(NadkitError, match="does not run on \\[1, 32, 32\\] images.*input_shape"):
        _ = NAD(net, points_of(net), engine=Engine(input_shape=(1, 32, 32))).widths
    with pytest.raises(NadkitError, match="the data's images are \\[3, 12, 12\\] but input_shape is"):
        NAD(net, points_of(net), steps=1, engine=Engine(input_shape=(3, 16, 16))).fit(data, [0], progress=False)


@pytest.mark.slow
def test_the_input_shape_comes_from_the_data(net, data):
    nad = NAD(net, points_of(net), steps=1, batch_per_class=2)
    nad.fit(data, [0], progress=False)
    assert nad.input_shape == (3, 12, 12) and nad.widths == [6, 8]


@pytest.mark.slow
def test_nad_leaves_the_callers_model_as_it_found_it(net, data):
    net.train()
    net.stem[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.requires_grad for p in net.parameters()]
    subs = NAD(net, points_of(net), beta=0.1, steps=3, batch_per_class=4).fit(data, [0, 1], progress=False)
    subs.evaluate(net, data, mosaics=2, chance_draws=9)
    assert all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == grads
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BatchNorm statistics too
    assert all(p.is_contiguous() for p in net.parameters())  # no channels_last left behind


@pytest.mark.slow
def test_fit_returns_sub_architectures_that_round_trip(net, data, tmp_path):
    subs = NAD(net, points_of(net), beta=0.1, steps=4, batch_per_class=4).fit(
        data, [0, 2, 3], class_names=["a", "b", "c", "d"], progress=False, preprocessing={"mean": [0.5]})
    assert isinstance(subs, SubArchitectures)
    assert subs.points == ["stem", "block"] and subs.classes == [0, 2, 3] and subs.class_names == ["a", "c", "d"]
    assert subs.config["preprocessing"] == {"mean": [0.5]} and subs.config["input_shape"] == [3, 12, 12]
    assert subs.config["beta"] == 0.1 and subs.config["weights_sha256"]
    assert subs.status["2"]["steps"] == 4 and subs.status["2"]["state"] == "done"
    assert subs.steps.tolist() == [4, 4, 4] and not subs.converged.any()
    back = SubArchitectures.load(subs.save(tmp_path / "r"))
    assert back.config == subs.config and back.status == subs.status and back.class_names == subs.class_names
    assert all(torch.equal(back.masks[p], subs.masks[p]) for p in subs.points)
    assert back.evaluate(net, data, mosaics=3, chance_draws=9).to_dict() == \
        subs.evaluate(net, data, mosaics=3, chance_draws=9).to_dict()


@pytest.mark.slow
def test_same_seed_same_masks_and_fit_is_the_engine(net, data):
    runs = [NAD(net, points_of(net), beta=0.1, steps=3, batch_per_class=4, seed=3) for _ in range(2)]
    a, b = runs[0].fit(data, [1, 3], progress=False), runs[1].run(data, [1, 3], progress=False)
    assert all(torch.equal(a.masks[p.name], m) for p, m in zip(points_of(net), b.masks))


@pytest.mark.slow
def test_evaluate_and_ablate_are_typed(net, data):
    subs = NAD(net, points_of(net), beta=0.1, steps=3, batch_per_class=4).fit(data, progress=False)
    ev = subs.evaluate(net, data, mosaics=4, chance_draws=9)
    assert len(ev.accuracy.subarch_balanced) == 4 and len(ev.similarity.kappa) == 2
    assert len(ev.similarity.expected) == 2 and ev.hit_rate is not None and len(ev.hit_rate.mean) == 2
    assert ev.to_dict()["similarity_kappa"] == ev.similarity.kappa and len(ev.confusion) == 4
    ab = subs.ablate(net, data, draws=4, popularity_draws=2, per_class=5)
    stem = ab.points["stem"]
    n = len(stem.ks)
    assert stem.base.balanced.shape == (4,) and stem.keep_only.balanced.shape == (4, 4)
    assert stem.rankings["nad"].balanced.shape == (4, n, 4) and stem.random.balanced.shape == (4, n, 4)
    assert stem.popularity.accuracy.shape == (2, 4, n, 4) and ab.selectivity()["block"].shape == (4,)
    two = NAD(net, points_of(net), beta=0.1, steps=2, batch_per_class=4).fit(data, [0, 1], progress=False)
    few = two.evaluate(net, data, mosaics=4, chance_draws=9)
    assert few.hit_rate is None and "needs 4 classes" in few.hit_rate_missing


def test_mask_points_on_a_torchvision_classifier_and_a_custom_module(net):
    resnet = torchvision.models.resnet18(num_classes=10)
    points = nadkit.mask_points(resnet, torch.zeros(2, 3, 32, 32))
    assert [p.module for p in points] == ["maxpool"] + [f"layer{s}.{i}" for s in (1, 2, 3, 4) for i in (0, 1)]
    assert points.rule.startswith("auto") and "changed in place" in points.left_out["bn1"]
    custom = points_of(net)
    assert [p.module for p in custom] == ["stem", "block"]
    assert "inside point stem" in custom.left_out["stem.0"] and "head.0" in custom.left_out
    vgg = nadkit.load_network("vgg16")
    card = nadkit.mask_points(vgg, (1, 32, 32))
    assert list(card) == nadkit.mask_points("vgg16", vgg) and "authors" in card.rule
    with pytest.raises(NadkitError, match="example_inputs"):
        nadkit.mask_points(net, "images")


@pytest.mark.slow
def test_a_torchvision_classifier_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    g = torch.Generator().manual_seed(2)
    data = TensorDataset(torch.randn(24, 3, 32, 32, generator=g), torch.arange(24) % 4)
    points = nadkit.mask_points(model, torch.zeros(1, 3, 32, 32))
    subs = NAD(model, points, beta=0.1, steps=2, batch_per_class=2, target="prediction").fit(data, progress=False)
    ev = subs.evaluate(model, data, mosaics=2, chance_draws=9)
    assert len(ev.kept) == len(points) and SubArchitectures.load(subs.save(tmp_path / "r")).points == subs.points


def test_steps_too_few_to_converge_warn(net):
    with pytest.warns(UserWarning, match="no class can converge; set max_steps >= 200"):
        NAD(net, points_of(net), convergence=Convergence(max_steps=79))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NAD(net, points_of(net), steps=79)  # an explicit number of steps is what was asked


@pytest.mark.slow
def test_a_network_of_ones_own_without_weights_or_beta_warns():
    asked = pipeline.Spec("mypkg.nets:small")
    with pytest.warns(UserWarning) as caught:
        pipeline.warn_defaults(asked, pipeline.Spec("mypkg.nets:small", beta=0.02))
    text = " ".join(str(w.message) for w in caught)
    assert "--weights FILE" in text and "--beta elbow" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.warn_defaults(pipeline.Spec("vgg16"), pipeline.Spec("vgg16", beta=0.3))


@pytest.mark.slow
def test_nadkit_evaluate_accepts_what_save_wrote(tmp_path, capsys, train_data):
    from nadkit.data import first_per_class

    model = nadkit.load_network("vgg16")
    subs = NAD(model, nadkit.mask_points(model, (1, 32, 32)), beta=0.3, steps=2, batch_per_class=4).fit(
        first_per_class(train_data, 8), [0, 1, 2, 3], progress=False)
    folder = subs.save(tmp_path / "mine")
    assert cli.main(["evaluate", str(folder)]) == 2
    assert "pass --arch" in capsys.readouterr().err
    argv = ["evaluate", str(folder), "--arch", "vgg16", "--dataset", "fashion-mnist", "--test-per-class", "5",
            "--mosaics", "4", "--json", str(tmp_path / "r.json")]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["points"] == subs.points and report["classes"] == [0, 1, 2, 3]
    assert cli.main(argv[:2] + ["--arch", "vgg16", "--dataset", "fashion-mnist", "--weights", "none"]) == 2
    assert "other weights" in capsys.readouterr().err


@pytest.mark.slow
def test_a_rerun_at_another_beta_is_refused(tmp_path):
    SubArchitectures({"p": torch.rand(1, 4)}, [0], ["T-shirt/top"], {"arch": "vgg16", "beta": 0.3,
                     "weights_sha256": "x"}, {"0": {}}).save(tmp_path / "run")
    spec = pipeline.Spec("vgg16", classes="0", beta=0.5, steps=1)
    with pytest.raises(NadkitError, match="holds a result at beta 0.3, this run's is 0.5; give another --out"):
        pipeline.disentangle(spec, tmp_path / "run", progress=False, allow_other_weights=True)


@pytest.mark.slow
def test_image_folders_take_and_record_the_given_preprocessing(tmp_path, capsys):
    from PIL import Image

    from nadkit.imagefolder import ImageFolderData

    gen = torch.Generator().manual_seed(0)
    for c in ("a", "b"):
        (tmp_path / "data" / "train" / c).mkdir(parents=True)
        for i in range(3):
            px = (torch.rand(36, 36, 3, generator=gen) * 255).byte().numpy()
            Image.fromarray(px).save(tmp_path / "data" / "train" / c / f"{i}.png")
    data = ImageFolderData(tmp_path / "data", "train", 32, mean=[0.5] * 3, std=[0.25] * 3, resize=40)
    plain = ImageFolderData(tmp_path / "data", "train", 32)
    x, ref = data.load(torch.tensor([0])), plain.load(torch.tensor([0]))
    assert not torch.allclose(x, ref)
    assert data.preprocessing()["resize"] == 40 and data.preprocessing()["mean"] == [0.5] * 3
    out = tmp_path / "run"
    argv = ["disentangle", "--arch", "torchvision:resnet18", "--weights", "none", "--dataset",
            f"imagefolder:{tmp_path / 'data'}", "--image-size", "32", "--classes", "0,1", "--steps", "1",
            "--batch-per-class", "2", "--beta", "0.1", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
            "--out", str(out)]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "preprocessing:" in err and "mean [0.5, 0.5, 0.5] and std [0.25, 0.25, 0.25]" in err
    cfg = json.loads((out / "meta.json").read_text())["config"]
    assert cfg["preprocessing"]["mean"] == [0.5] * 3 and cfg["preprocessing"]["std"] == [0.25] * 3
    assert cfg["dataset"] == f"imagefolder:{(tmp_path / 'data').absolute()}"
    assert cli.main(["disentangle", "--arch", "vgg16", "--mean", "0.5", "--std", "0.2", "--out", str(tmp_path / "x")]) == 2
    assert "apply to image folders" in capsys.readouterr().err


def test_help_of_nad_documents_every_constructor_argument():
    import inspect

    doc = NAD.__doc__
    params = list(inspect.signature(NAD.__init__).parameters)[1:]
    assert len(params) <= 8, params  # the method's settings in Method, the engine's in Engine
    for name in params:
        assert f"\n        {name}:" in doc, name
    for name in list(nadkit.Method.__dataclass_fields__) + list(nadkit.Engine.__dataclass_fields__):
        assert name in doc, name


def test_settings_write_and_read_the_config_results_record():
    import dataclasses

    from nadkit.settings import Method, from_config, to_config

    method, engine = Method(beta=0.3, steps=40, target="prediction"), Engine(precision="bf16", snapshot_every=5)
    cfg = to_config(method, engine, "cpu")
    assert list(cfg) == ["objective", "beta", "lr", "steps", "batch_per_class", "seed", "device", "precision",
                         "snapshot_every", "target", "fused"]
    back_method, back_engine = from_config(cfg)
    assert to_config(back_method, back_engine, "cpu") == cfg
    assert dataclasses.replace(back_method, convergence=method.convergence) == method  # steps=40: no convergence kept
    auto = to_config(Method(), Engine(fused=False), "cuda")
    assert auto["convergence"] == {"max_steps": 2000, "window": 100, "tol": 0.05, "patience": 2} and "fused" not in auto
    assert from_config(auto)[0] == Method()


def test_an_engine_setting_given_as_a_keyword_says_where_it_goes(net):
    with pytest.raises(NadkitError, match=r"engine=nadkit.Engine\(fused=...\)"):
        NAD(net, points_of(net), fused=False)
    with pytest.raises(NadkitError, match="no setting 'betta'"):
        NAD(net, points_of(net), betta=0.3)
