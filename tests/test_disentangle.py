import pytest
import torch
import torch.nn.functional as F

from nadkit import Engine
from nadkit.disentangle import NAD, Convergence, initial_logits, knee, nad_loss
from nadkit.networks import build_network, load_network
from nadkit.points import mask_points, masked


def fit(vgg, data, classes, class_batch=None, objective="official", seed=0, steps=6):
    model, points = vgg
    nad = NAD(model, points, beta=0.02, steps=steps, batch_per_class=8, objective=objective, seed=seed)
    return nad.run(data, classes, class_batch=class_batch, progress=False)


@pytest.mark.slow
def test_class_batched_equals_one_class_at_a_time(vgg, train_data):
    for objective in ("official", "paper"):
        together = fit(vgg, train_data, [0, 4, 6, 9], objective=objective)
        apart = fit(vgg, train_data, [0, 4, 6, 9], class_batch=1, objective=objective)
        other_company = fit(vgg, train_data, [6, 2], objective=objective)
        for a, b, c in zip(together.masks, apart.masks, other_company.masks):
            assert (a - b).abs().max() < 1e-5 and torch.equal(a > 0.5, b > 0.5)
            assert (a[2] - c[0]).abs().max() < 1e-5  # class 6 does not depend on its neighbours


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16", "resnet50", "densenet121", "darts"])
def test_every_network_class_batched_equals_one_class_at_a_time(arch, train_data):
    """Uneven chunks (3 + 1), per-class betas, and enough steps that masks have flipped."""
    model = load_network(arch)
    nad = NAD(model, mask_points(arch, model), steps=12, batch_per_class=4, lr=0.5)
    classes, betas = [1, 4, 7, 8], [0.01, 1.0, 0.1, 3.0]
    together = nad.run(train_data, classes, class_batch=3, betas=betas, progress=False)
    apart = nad.run(train_data, classes, class_batch=1, betas=betas, progress=False)
    assert together.flips.sum() > 0, "no mask flipped: the test would prove nothing"
    start = [torch.stack(z) > 0 for z in zip(*(initial_logits(nad.widths, 0, c) for c in classes))]
    assert any(not torch.equal(s, m > 0.5) for s, m in zip(start, together.masks))
    for a, b in zip(together.masks, apart.masks):  # (12 steps of a deep net amplify the last bits)
        assert (a - b).abs().max() < 1e-3 and torch.equal(a > 0.5, b > 0.5)


@pytest.mark.slow
def test_until_convergence_classes_stop_on_their_own(vgg, train_data):
    """With steps="auto" a class leaves the batch when its masks stop changing; when it stops,
    and its masks, do not depend on the classes beside it."""
    model, points = vgg
    nad = NAD(model, points, beta=0.3, lr=0.5, batch_per_class=4,
              convergence=Convergence(max_steps=80, window=5, tol=0.1))
    together = nad.run(train_data, [0, 5, 9], progress=False)
    apart = nad.run(train_data, [0, 5, 9], class_batch=1, progress=False)
    assert together.steps.tolist() == apart.steps.tolist()
    assert together.converged.any() and together.steps.min() < 80  # some class stopped early
    assert (together.steps % 5 == 0).all()
    # tens of steps amplify the last bits in which convolutions of other batch sizes differ
    for a, b in zip(together.masks, apart.masks):
        assert (a - b).abs().max() < 1e-2 and torch.equal(a > 0.5, b > 0.5)
    # a converged class's masks changed at most tol of each point's channels over its last window
    history = NAD(model, points, beta=0.3, lr=0.5, batch_per_class=4, steps=80, engine=Engine(snapshot_every=5))
    snaps = history.run(train_data, [0, 5, 9], progress=False).snapshots
    allowed = torch.tensor([max(1, int(0.1 * w)) for w in nad.widths])
    for j in range(3):
        t = int(together.steps[j]) // 5 - 1
        calm = [bool((torch.tensor([(s[j, u] != s[j, u - 1]).sum() for s in snaps]) <= allowed).all())
                for u in (t - 1, t)]
        assert all(calm) == bool(together.converged[j])
        masks = [s[j, t] for s in snaps]  # a fixed-steps run passes through the same masks
        assert all(torch.equal(m, f[j] > 0.5) for m, f in zip(masks, together.masks))


@pytest.mark.slow
def test_same_seed_same_masks_other_seed_other_masks(vgg, train_data):
    a, b = fit(vgg, train_data, [1, 2]), fit(vgg, train_data, [1, 2])
    c = fit(vgg, train_data, [1, 2], seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not all(torch.equal(x, y) for x, y in zip(a.masks, c.masks))


@pytest.mark.slow
def test_official_loss_matches_the_authors_formula_for_one_class(vgg, train_data):
    model, points = vgg
    torch.manual_seed(0)
    x, y = train_data.load(torch.arange(16)), train_data.labels[:16]
    masks = [torch.sigmoid(l)[None] for l in initial_logits([a.shape[1] for a in _acts(model, points, x)], 0, 0)]
    ref = _acts(model, points, x)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        acts = []
        with masked(model, points, masks, torch.zeros(16, dtype=torch.long), record=acts):
            out = model(x)
    loss, rec = nad_loss("official", out, y, acts, ref, correct, masks, torch.tensor([0.5]), 16)
    # the authors' code, written out: mse over correctly classified images only, divided by P
    ce = F.cross_entropy(out, y)
    mse = sum(F.mse_loss(a[correct], r[correct]) for a, r in zip(acts, ref))
    reg = sum((m ** 2).mean() for m in masks)
    expected = (ce + mse) / len(points) + 0.5 * reg / len(points)
    assert torch.allclose(loss[0], expected, rtol=1e-5) and torch.allclose(rec[0], (ce + mse) / len(points), rtol=1e-5)


def _acts(model, points, x):
    acts = []
    with torch.no_grad(), masked(model, points, record=acts):
        model(x)
    return acts


@pytest.mark.slow
def test_update_is_a_normalised_step_per_class_and_point(vgg, train_data):
    model, points = vgg
    nad = NAD(model, points, lr=0.1, steps=1, batch_per_class=8, engine=Engine(input_shape=(1, 32, 32)))
    start = [torch.stack(z) for z in zip(*(initial_logits(nad.widths, 0, c) for c in (3, 5)))]
    res = nad.run(train_data, [3, 5], progress=False)
    for s, m in zip(start, res.masks):
        step = (torch.logit(m.double()) - s.double()).norm(dim=1)
        assert torch.allclose(step, torch.full_like(step, 0.1), atol=1e-4)


@pytest.mark.slow
def test_a_class_the_network_never_gets_right_is_skipped(train_data):
    torch.manual_seed(0)
    model = build_network("vgg16").eval()
    with torch.no_grad():
        model.classifier.bias[:] = torch.tensor([0.0] + [-1e4] * 9)  # always predicts class 0
    points = mask_points("vgg16", model)
    nad = NAD(model, points, steps=3, batch_per_class=4)
    res = nad.run(train_data, [0, 5], progress=False)
    assert res.skipped_steps.tolist() == [0, 3]
    start = initial_logits(nad.widths, 0, 5)
    assert all(torch.allclose(m[1], torch.sigmoid(s)) for m, s in zip(res.masks, start))


def test_knee_of_a_convex_curve():
    removed = [0.0, 0.3, 0.5, 0.6, 0.65, 0.7]
    loss = [0.0, 0.01, 0.03, 0.2, 0.6, 1.0]
    assert knee(removed, loss) == 2


@pytest.mark.slow
def test_a_run_records_per_class_steps_state_and_history(tmp_path):
    from nadkit import pipeline
    from nadkit.subarch import load_history

    spec = pipeline.Spec("vgg16", classes="0,1", beta=0.3, steps="auto", max_steps=200, batch_per_class=4,
                         snapshot_every=100)
    sub = pipeline.disentangle(spec, tmp_path / "r", progress=False)
    assert sub.config["steps"] == "auto" and sub.config["convergence"]["max_steps"] == 200
    for st in sub.status.values():
        assert st["state"] in ("converged", "max_steps") and st["steps"] == 200
    history = load_history(tmp_path / "r")
    assert history["flips"].shape == (2, 200, len(sub.points)) and history["flips"].sum() > 0
    assert history["snap.conv5_3"].shape[:2] == (2, 2)
    assert torch.equal(history["snap.conv5_3"][:, -1].bool(), sub.masks["conv5_3"] > 0.5)


def test_paper_scale_defaults_are_the_authors():
    from nadkit.paper import authors_defaults

    assert authors_defaults("vgg16", "imagefolder:/data/imagenet")["beta"] == 4.5
    assert authors_defaults("vgg16", "imagefolder:/data/Places365")["beta"] == 5.0
    assert authors_defaults("darts", "imagefolder:/x/places365_standard")["beta"] == 0.20
    assert authors_defaults("resnet50", "imagefolder:/x")["passes"] == 21


@pytest.mark.slow
def test_contrast_term_is_minus_log_one_minus_p_and_its_gradient_matches_finite_differences():
    """The contrast objective's extra term, -log(1 - p_c), against its definition, and the whole
    loss's gradient in the masks' logits against finite differences (float64)."""
    from nadkit.disentangle import not_named

    z = torch.randn(6, 5, dtype=torch.float64)
    c = torch.tensor([0, 1, 2, 3, 4, 0])
    want = -torch.log1p(-z.softmax(1)[torch.arange(6), c])
    assert torch.allclose(not_named(z, c), want)
    assert torch.isfinite(not_named(torch.tensor([[60.0, -60.0]]), torch.tensor([0]))).all()  # p_c = 1 - 1e-52

    k, own, per_job, widths = 2, 2, 4, [3, 2]
    acts_ref = [torch.randn(k * per_job, w, 2, 2, dtype=torch.float64) for w in widths]
    labels = torch.tensor([1, 1, 0, 2, 2, 2, 1, 0])
    correct = torch.tensor([True, False, True, True, True, True, False, True])
    head = torch.randn(3, sum(widths), dtype=torch.float64)

    def loss(*lg):
        masks = [torch.sigmoid(x) for x in lg]
        owner = torch.arange(k).repeat_interleave(per_job)
        acts = [r * m[owner][:, :, None, None] for r, m in zip(acts_ref, masks)]
        logits = torch.cat([a.mean((2, 3)) for a in acts], 1) @ head.T
        return nad_loss("contrast", logits, labels, acts, acts_ref, correct, masks,
                        torch.tensor([0.3, 0.7], dtype=torch.float64), per_job, own=own,
                        job_class=torch.tensor([1, 2]))[0].sum()

    logits = tuple(torch.randn(k, w, dtype=torch.float64, requires_grad=True) for w in widths)
    assert torch.autograd.gradcheck(loss, logits)


def test_contrast_loss_is_the_official_one_plus_the_term_on_other_images_only():
    k, own, per_job, widths = 1, 2, 4, [3]
    acts_ref = [torch.randn(per_job, 3, 2, 2)]
    masks = [torch.rand(1, 3)]
    acts = [acts_ref[0] * masks[0][0][None, :, None, None]]
    logits = torch.randn(per_job, 3)
    labels, correct = torch.tensor([1, 1, 0, 2]), torch.tensor([True, True, True, False])
    beta = torch.tensor([0.5])
    contrast, _ = nad_loss("contrast", logits, labels, acts, acts_ref, correct, masks, beta, per_job,
                           own=own, job_class=torch.tensor([1]))
    official, _ = nad_loss("official", logits[:own], labels[:own], [acts[0][:own]], [acts_ref[0][:own]],
                           correct[:own], masks, beta, own)
    extra = -torch.log1p(-logits[own:].softmax(1)[:, 1]).mean() / len(widths)
    assert torch.allclose(contrast, official + extra, atol=1e-6)


@pytest.mark.slow
def test_contrast_batches_show_each_class_others_balanced_and_seeded(train_data):
    from nadkit.data import ContrastBatches

    a = ContrastBatches(train_data, [3, 5], 9, seed=0)
    idx, _ = a.next_indices()
    labels = train_data.labels[idx].view(2, 18)
    assert (labels[0, :9] == 3).all() and (labels[1, :9] == 5).all()
    assert sorted(labels[0, 9:].tolist()) == [c for c in range(10) if c != 3]  # one of each other class
    assert 5 not in labels[1, 9:].tolist()
    alone = ContrastBatches(train_data, [5], 9, seed=0).next_indices()[0]
    assert torch.equal(alone, idx[18:])  # class 5 sees the same images whatever runs beside it


@pytest.mark.slow
def test_contrast_class_batched_equals_one_class_at_a_time_and_fused(vgg, train_data):
    together = fit(vgg, train_data, [0, 4, 6], objective="contrast")
    apart = fit(vgg, train_data, [0, 4, 6], class_batch=1, objective="contrast")
    for a, b in zip(together.masks, apart.masks):
        assert (a - b).abs().max() < 1e-5 and torch.equal(a > 0.5, b > 0.5)
