"""The NAD optimizer (Hu et al., ICCV 2021, Algorithm 1), class-batched.

Each job (a class, with its own beta) owns one logit per channel at every mask point. K jobs
share every forward and backward pass, but every quantity is computed per job: the loss is a
sum of per-job losses (a job's logits touch only its own images), the gradient is normalised
per job and per point (Eq. 15), a job skips a step when the original network gets none of its
images right, and each job draws its initial logits and its images from its own seeded stream.
So a class's masks do not depend on K or on which classes run beside it.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checks import (OBJECTIVES, TARGETS, check_classes, check_nad_settings, model_device,  # noqa: F401
                     resolve_device)
from .data import (ClassBatches, ContrastBatches, ImageData, as_image_data, class_generator, class_index, load_batch,
                   preprocessing_of, step_batches)
from .anynet import check_channels
from .elbow import ELBOW_BETAS, binary_loss, elbow_classes, elbow_sweep, knee  # noqa: F401
from .errors import NadkitError
from .fold import fold_batchnorm as fold_batchnorm_into_convs
from .networks import weights_sha256
from .objectives import SquaredError, nad_loss, not_named  # noqa: F401
from .points import MaskPoint, check_output, check_points, masked, point_widths, probe_points, select_output
from .settings import (DEFAULT_BETA, Convergence, Engine, Method, check_convergence, is_default_beta,  # noqa: F401
                       method_of, to_config)
from .subarch import SubArchitectures
from .version import __version__

if TYPE_CHECKING:
    from .subarch import SubArchitectures



def initial_logits(widths: Sequence[int], seed: int, cls: int) -> list[Tensor]:
    """A class's starting logits, N(0, 1) per channel, from the class's own random stream."""
    gen = class_generator(seed, cls, stream=0)
    return [torch.randn(w, generator=gen) for w in widths]


@dataclass
class NADResult:
    """Continuous masks (sigmoid of the logits) per point, [jobs, channels], and per-job statistics.

    ``flips`` [jobs, steps, points] counts the channels whose binarised mask changed at each step
    (zero after a job stopped); ``snapshots`` holds, per point, the binarised masks every
    ``snapshot_every`` steps, [jobs, snapshots, channels] (frozen after a job stopped).
    """

    masks: list[Tensor]
    skipped_steps: Tensor
    final_rec: Tensor
    unreadable: Tensor | None = None  # images skipped as unreadable, per job
    steps: Tensor | None = None       # steps each job took
    converged: Tensor | None = None   # whether each job stopped because its masks stopped changing
    flips: Tensor | None = None
    snapshots: list[Tensor] | None = None

    def job(self, j: int) -> "NADResult":
        """The result of job ``j`` alone (one row of everything)."""
        pick = lambda t: None if t is None else t[j:j + 1]  # noqa: E731
        return NADResult([m[j:j + 1] for m in self.masks], pick(self.skipped_steps), pick(self.final_rec),
                         pick(self.unreadable), pick(self.steps), pick(self.converged), pick(self.flips),
                         None if self.snapshots is None else [s[j:j + 1] for s in self.snapshots])


def concat(parts: Sequence[NADResult]) -> NADResult:
    """Stack the jobs of several results (padding the step axis of ``flips``)."""
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    longest = max(p.flips.shape[1] for p in parts)
    flips = torch.cat([F.pad(p.flips, (0, 0, 0, longest - p.flips.shape[1])) for p in parts])
    snaps = None
    if parts[0].snapshots is not None:
        n = max(p.snapshots[0].shape[1] for p in parts)
        grow = lambda s: torch.cat([s, s[:, -1:].expand(-1, n - s.shape[1], -1)], 1)  # noqa: E731
        snaps = [torch.cat([grow(p.snapshots[i]) for p in parts]) for i in range(len(parts[0].snapshots))]
    return NADResult([torch.cat([p.masks[i] for p in parts]) for i in range(len(parts[0].masks))],
                     cat("skipped_steps"), cat("final_rec"), cat("unreadable"), cat("steps"), cat("converged"),
                     flips, snaps)


def class_status(res: NADResult, j: int, auto: bool) -> dict:
    """Job ``j``'s status as a result records it: ``state`` (converged, max_steps when ``auto``
    stopped at its guard, done after a fixed number of steps, skipped when the network got none of
    its images right), the steps taken and skipped, the unreadable images met."""
    skipped, steps = int(res.skipped_steps[j]), int(res.steps[j])
    state = "skipped" if skipped == steps else "converged" if res.converged[j] else "max_steps" if auto else "done"
    return {"state": state, "steps": steps, "skipped_steps": skipped, "unreadable_images": int(res.unreadable[j])}


class NAD:
    """Neural Architecture Disentanglement of a frozen ``model`` at ``points``.

    ``NAD(model, points, beta=0.02).fit(data, classes)`` learns one sub-architecture per class and
    returns them as a ``SubArchitectures``. Every argument is checked here, each bad one refused
    in one line (``NadkitError``, a ``ValueError``); ``fit`` checks the data and warns (through
    ``warnings``) where the CLI does: an untuned default beta, classes skipped or stopped at the
    step limit, points where every class keeps every channel or none. NAD works on a frozen copy of ``model``: the
    caller's model keeps its training mode, ``requires_grad`` and memory format.

    The settings come in two typed objects: the method's (``Method``: beta, lr, steps,
    batch_per_class, objective, target, seed, convergence), which change the masks, and the
    engine's (``Engine``: device, workers, precision, channels_last, decode_on_device, fused,
    snapshot_every, input_shape), which say where and how they are computed. The method's may
    also be given as keywords: ``NAD(model, points, beta=0.3, steps=20)`` is
    ``NAD(model, points, Method(beta=0.3, steps=20))``.

    Args:
        model: the trained classification network (any ``nn.Module`` that maps images to logits;
            a forward returning a tuple or dict: name the logits with ``mask_points(..., output=)``).
        points: where channels are masked: ``nadkit.mask_points(model, example_inputs)`` (its
            ``output`` selects the logits of a tuple/dict output), or ``MaskPoint``s of your own;
            each is probed on the model (a 4-D output, one call per forward, not changed in place).
        method: the method's settings (default ``Method()``; ``help(nadkit.Method)``):
            beta: the sparsity weight (> 0; the authors use 0.02-5.0), or ``"elbow"``: ``fit`` first
            runs the Elbow sweep (``elbow_sweep``) on up to four of the classes and takes its knee.
            lr: the step of Eq. 15 (> 0): every point's logits move by ``lr`` per step.
            steps: ``"auto"`` (the default) runs each class until its binarised masks stop changing
            (``convergence``), as Algorithm 1's "until convergence"; an int runs exactly that many.
            batch_per_class: images of each class per step.
            objective: ``"official"`` (the authors' released code), ``"paper"`` (Eq. 13-14), or
            ``"contrast"``: the official objective, and each step also shows the class as many
            images of the other classes, on which the masked network is asked not to name it.
            target: what the masked network must keep: ``"label"`` (the authors') or
            ``"prediction"`` (the network's own output: for networks that get few images right).
            seed: every random draw (initial masks, images) comes from ``(seed, class)``.
            convergence: when ``steps="auto"`` stops a class, and its guard ``max_steps``.
        engine: the engine's settings (default ``Engine()``; ``help(nadkit.Engine)``): device
            (default: where ``model`` is), workers, precision ("fp32" or "bf16"), channels_last,
            decode_on_device, fused (BatchNorms folded and the mask step fused: faster, the same
            masks up to the last bits of ``fused=False``, the reference arithmetic),
            snapshot_every, input_shape (default: read from the data ``fit`` is given).
        settings: (keywords) the method's settings by name, replacing those of ``method``.
    """

    def __init__(self, model: nn.Module, points: Sequence[MaskPoint], method: Method | None = None,
                 engine: Engine | None = None, **settings):
        if not isinstance(model, nn.Module):
            raise NadkitError(f"model must be a torch.nn.Module, got a {type(model).__name__}")
        method = method_of(method, settings)
        engine = Engine() if engine is None else engine
        if not isinstance(engine, Engine):
            raise NadkitError(f"engine must be a nadkit.Engine, got a {type(engine).__name__}")
        beta, lr, steps, batch_per_class = method.beta, method.lr, method.steps, method.batch_per_class
        objective, target, seed, convergence = method.objective, method.target, method.seed, method.convergence
        device, workers, precision, fused = engine.device, engine.workers, engine.precision, engine.fused
        snapshot_every, input_shape = engine.snapshot_every, engine.input_shape
        check_nad_settings(beta, lr, steps, batch_per_class, objective, target, precision, workers, seed)
        check_convergence(convergence, snapshot_every)
        self.method, self.engine = method, engine
        self.output = getattr(points, "output", None)  # tuple/dict outputs: mask_points(..., output=...)
        self.points, self.fused = check_points(model, points), fused
        self.device = resolve_device(device) if device is not None else model_device(model)
        model_device(model)  # one line for a model on the meta device
        self.weights_sha256 = weights_sha256(model)
        # NAD's own frozen copy: the caller's model is left as it was (mode, requires_grad, layout)
        self.model, self.folded = copy.deepcopy(model).to(self.device).eval().requires_grad_(False), 0
        if fused:
            # a folded copy when BatchNorms fold (10-20% of a step): the same network, up to the last bits
            self.model, self.folded = fold_batchnorm_into_convs(self.model, {p.module for p in self.points})
        if self.output is not None:

            forward, output = self.model.forward, self.output
            self.model.forward = lambda *a, **k: select_output(forward(*a, **k), output)
        self.beta_untuned = is_default_beta(beta)
        beta = beta if isinstance(beta, str) else float(beta)
        self.beta, self.lr, self.steps, self.batch_per_class = beta, lr, steps, batch_per_class
        self.objective, self.target, self.seed, self.workers = objective, target, seed, workers
        self.convergence, self.snapshot_every = convergence, snapshot_every
        self.decode_on_device = engine.decode_on_device  # image folders: JPEG decoding on the device (nvJPEG)
        self.autocast = precision == "bf16"  # bf16 autocast if asked
        self.precision = precision
        self._channels_last = engine.channels_last
        self.input_shape: tuple[int, ...] | None = None
        self._widths: list[int] | None = None
        if input_shape is not None:
            self._set_input_shape(input_shape)
        if steps == "auto" and convergence.max_steps < convergence.window * convergence.patience:
            warnings.warn(f"steps='auto' with max_steps {convergence.max_steps}: convergence is checked every "
                          f"{convergence.window} steps and needs {convergence.patience} calm checks, so no class can "
                          f"converge; set max_steps >= {convergence.window * convergence.patience} "
                          "(Convergence(max_steps=...), --max-steps) or steps=N to run exactly N steps", stacklevel=2)

    def _set_input_shape(self, shape: Sequence[int]) -> None:
        shape = tuple(int(v) for v in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise NadkitError(f"input_shape must be one image's (channels, H, W), got {list(shape)}")
        self.input_shape, self._widths = shape, None
        # channels_last by default (faster convolutions and their backward, on GPUs with tensor cores and
        # with oneDNN on CPUs: 1.1-1.5x per step on the embedded networks)
        self.channels_last = True if self._channels_last is None else self._channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    @property
    def widths(self) -> list[int]:
        """Channels at each point (from one forward pass of a zero image of ``input_shape``)."""
        if self._widths is None:
            if self.input_shape is None:
                raise NadkitError("NAD does not know the images' shape yet; pass input_shape=(C, H, W) or call fit")
            try:
                self._widths = point_widths(self.model, self.points, self.input_shape)
                probe_points(self.model, self.points, self.input_shape)
            except NadkitError:
                raise
            except Exception as e:  # noqa: BLE001 - a network that cannot run at this size is bad input
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                raise NadkitError(f"the network does not run on {list(self.input_shape)} images ({type(e).__name__}: "
                                  f"{reason}); pass input_shape=(C, H, W) of the images it was trained on") from None
        return self._widths

    def _adopt(self, data, classes: Sequence[int] | None) -> tuple[ImageData, list[int]]:
        """``data`` as NAD reads it, its image shape taken (or checked against ``input_shape``), and
        ``classes`` checked to be among its classes (None: all)."""
        data = as_image_data(data)
        classes = check_classes(range(len(data.class_names)) if classes is None else classes, len(data.class_names))
        first = class_index(data.labels, len(data.class_names))[classes[0]][:1]
        if len(first) and not hasattr(data, "read"):  # image folders: the shape is the transform's
            batch = load_batch(data, first)
            shape = tuple(batch.shape[1:])
            check_channels(self.model, shape)

            param = next(self.model.parameters())
            check_output(self.model, batch.to(param.device, param.dtype))
            if self.input_shape is None:
                self._set_input_shape(shape)
            elif shape != self.input_shape:
                raise NadkitError(f"the data's images are {list(shape)} but input_shape is {list(self.input_shape)}; "
                                  "leave input_shape out (it is read from the data) or fix it")
        if self.input_shape is None:
            raise NadkitError("NAD does not know the images' shape; pass input_shape=(C, H, W)")
        return data, classes

    @property
    def max_steps(self) -> int:
        return self.convergence.max_steps if self.steps == "auto" else int(self.steps)

    def fit(self, data, classes: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
            class_batch: int | None = None, progress: bool = True,
            preprocessing: dict | str | None = None) -> "SubArchitectures":
        """Learn the sub-architecture of each of ``classes`` (default: every class of ``data``).

        ``data``: a ``torch.utils.data.Dataset`` of (image tensor, label) pairs (a ``TensorDataset``
        too), already preprocessed as the network expects, or a nadkit split (``fashion_mnist``).
        ``class_names``: names of the class ids (default: the dataset's ``classes``, else the ids).
        ``class_batch``: classes per forward pass (default: all). ``preprocessing``: what was done
        to the images, recorded in the result (default: what the data set says of itself).
        Returns the masks with the points, classes, configuration and per-class status.
        """

        if class_batch is not None and (not isinstance(class_batch, int) or class_batch < 1):
            raise NadkitError(f"class_batch must be an integer >= 1 (or None: all classes at once), got {class_batch!r}")
        images, classes = self._adopt(as_image_data(data, class_names), classes)
        elbow = None
        if self.beta == "elbow":
            elbow = elbow_sweep(self, images, elbow_classes(classes, 4), progress=progress)
            self.beta = elbow["beta"]
        res = self.run(images, classes, class_batch=class_batch, progress=progress)
        config = self.config(data if preprocessing is None else None, preprocessing)
        if elbow is not None:
            config["elbow"] = elbow
        status = {str(c): class_status(res, j, self.steps == "auto") for j, c in enumerate(classes)}
        if self.output is not None:
            config["output"] = self.output
        sub = SubArchitectures({p.name: m.float() for p, m in zip(self.points, res.masks)}, classes,
                                [images.class_names[c] for c in classes], config, status, self.provenance())
        warn_result(sub, untuned=self.beta_untuned and elbow is None)
        return sub

    def config(self, data=None, preprocessing: dict | str | None = None) -> dict:
        """What defines this run, as a result records it (``SubArchitectures.config``)."""
        method = Method(**{f: getattr(self, f) for f in ("beta", "lr", "steps", "batch_per_class", "objective",
                                                          "target", "seed", "convergence")})  # beta: the Elbow's
        cfg = {"arch": None, "dataset": None, "weights": None, "weights_sha256": self.weights_sha256}
        cfg |= to_config(method, self.engine, self.device.type)
        cfg["points"] = [p.module for p in self.points]
        cfg["mask_points"] = [asdict(p) for p in self.points]
        cfg["input_shape"] = list(self.input_shape) if self.input_shape else None
        cfg["preprocessing"] = preprocessing if preprocessing is not None else preprocessing_of(data)
        return cfg

    def provenance(self) -> dict:
        """What made a result: nadkit's and torch's versions, the device, the weights' sha256."""

        return {"nadkit": __version__, "torch": torch.__version__, "device": self.device.type,
                "weights": None, "weights_sha256": self.weights_sha256}

    def run(self, data, classes: Sequence[int], class_batch: int | None = None,
            betas: Sequence[float] | None = None, progress: bool = True,
            on_chunk: Callable[[list[int], NADResult], None] | None = None) -> NADResult:
        """The optimizer itself: masks and per-job statistics of ``classes`` (jobs), ``class_batch``
        jobs per pass (default: all), as a ``NADResult`` (what ``fit`` and the CLI build on).

        ``betas`` gives each job its own beta (the Elbow sweep runs beta values side by side);
        ``on_chunk`` is called with each finished chunk, so callers can save it at once.
        """
        data, _ = self._adopt(data, sorted(set(classes)))
        classes = list(classes)
        if betas is None and self.beta == "elbow":
            raise NadkitError("beta='elbow' is resolved by fit (the Elbow sweep); run takes a number or betas=[...]")
        betas = list(betas) if betas is not None else [self.beta] * len(classes)
        k = class_batch or len(classes)
        parts: list[NADResult] = []
        bar = tqdm(total=self.max_steps * len(classes), desc="NAD", unit="class-step", disable=not progress)
        # Masks of dropped channels reach sigmoid(-90) and below: denormal floats, which make CPU
        # arithmetic many times slower. Flushing them to zero changes no binarised mask.
        flushed = torch.set_flush_denormal(True)
        try:
            for start in range(0, len(classes), k):
                chunk = classes[start:start + k]
                result = self._fit_chunk(data, chunk, betas[start:start + k], bar)
                if on_chunk is not None:
                    on_chunk(chunk, result)
                parts.append(result)
        finally:
            if flushed:
                torch.set_flush_denormal(False)
            bar.close()
        return concat(parts)

    def _fit_chunk(self, data: ImageData, classes: list[int], betas: list[float], bar) -> NADResult:
        dev, n, k, conv = self.device, self.batch_per_class, len(classes), self.convergence
        per_class = [initial_logits(self.widths, self.seed, c) for c in classes]
        logits = [torch.stack([pc[i] for pc in per_class]).to(dev) for i in range(len(self.points))]
        beta = torch.tensor(betas, dtype=torch.float32, device=dev)
        running = torch.ones(k, dtype=torch.bool)
        converged = torch.zeros(k, dtype=torch.bool)
        taken = torch.zeros(k, dtype=torch.long)
        skipped = torch.zeros(k, dtype=torch.long)
        rec = torch.zeros(k)
        unreadable = torch.zeros(k, dtype=torch.long)
        state = [lg > 0 for lg in logits]               # binarised masks: sigmoid > 0.5
        anchor = list(state)                            # the binarised masks at the last check
        calm = torch.zeros(k, dtype=torch.long)          # checks passed in a row
        flips = torch.zeros(k, self.max_steps, len(self.points), dtype=torch.int16, device=dev)  # on the device: no sync per step
        snaps: list[list[Tensor]] = [[] for _ in self.points]
        allowed = conv.allowed(self.widths).to(dev)
        contrast = self.objective == "contrast"
        per_job = 2 * n if contrast else n  # contrast: the class's images, then as many of the others'
        sampler = (ContrastBatches if contrast else ClassBatches)(data, classes, n, self.seed)
        decode = dev if self.decode_on_device else None
        batches = step_batches(data, sampler, self.max_steps, train=True, workers=self.workers,
                               decode_device=decode, rows=lambda: running.repeat_interleave(per_job))
        for t, (x, y, bad) in enumerate(batches):
            jobs = running.nonzero().flatten()
            r, active = self._step(x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), logits,
                                   beta, jobs.to(dev))
            rec[jobs], taken[jobs] = r.cpu(), taken[jobs] + 1
            skipped[jobs] += (~active).cpu()
            unreadable[jobs] += bad.view(len(jobs), per_job).sum(1)
            for i, lg in enumerate(logits):
                now = lg > 0
                flips[:, t, i] = (now != state[i]).sum(1).to(torch.int16)
                state[i] = now
                if self.snapshot_every and (t + 1) % self.snapshot_every == 0:
                    snaps[i].append(now.cpu())
            bar.update(len(jobs))
            if (t + 1) % conv.window == 0:
                changed = torch.stack([(a != b).sum(1) for a, b in zip(state, anchor)], 1)  # [k, points]
                calm = torch.where((changed <= allowed).all(1).cpu(), calm + 1, 0)
                done = (calm >= conv.patience) & running
                if self.steps == "auto":
                    converged |= done
                    running &= ~done
                    bar.update(int(done.sum()) * (self.max_steps - t - 1))
                else:
                    converged = done
                anchor = list(state)
                bar.set_postfix(converged=int(converged.sum()), running=int(running.sum()), refresh=False)
            if not running.any():
                break
        snapshots = [torch.stack(s, 1) for s in snaps] if self.snapshot_every and snaps[0] else None
        return NADResult([torch.sigmoid(lg).cpu() for lg in logits], skipped, rec, unreadable, taken, converged,
                         flips[:, :taken.max()].cpu(), snapshots)

    def _precision(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def classes_that_fit(self, budget: float = 0.8) -> int:
        """How many classes one pass can hold in ``budget`` of the free GPU memory, from the peak
        memory of a one-class step on random images."""
        free, _ = torch.cuda.mem_get_info(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        per_job = self.batch_per_class * (2 if self.objective == "contrast" else 1)
        x = torch.randn(per_job, *self.input_shape, device=self.device)
        y = torch.zeros(per_job, dtype=torch.long, device=self.device)
        logits = [torch.zeros(1, w, device=self.device) for w in self.widths]
        self._step(x, y, logits, torch.zeros(1, device=self.device), torch.zeros(1, dtype=torch.long,
                                                                                  device=self.device))
        per_class = torch.cuda.max_memory_allocated(self.device) - base
        return max(1, int(budget * free // max(per_class, 1)))

    def _step(self, x: Tensor, y: Tensor, logits: list[Tensor], beta: Tensor, jobs: Tensor) -> tuple[Tensor, Tensor]:
        """One update (Eq. 15) of the logits of ``jobs`` (rows of ``logits`` and ``beta``), whose
        images ``x`` are, job-major (``n`` each; the contrast objective: ``2n``, the class's then the
        others'); returns their rec term and which of them updated."""
        k, own = len(jobs), self.batch_per_class
        n = len(x) // k  # images per job
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ref_acts: list[Tensor] = []
        with torch.no_grad(), self._precision(), masked(self.model, self.points, record=ref_acts):
            ref_pred = self.model(x).argmax(1)
        job_class = y.view(k, n)[:, 0]  # the class each job disentangles: its own images' label
        if self.target == "prediction":
            y = ref_pred if n == own else torch.cat([ref_pred.view(k, n)[:, :own],
                                                      y.view(k, n)[:, own:]], 1).flatten()
        ref_correct = ref_pred == y
        # The authors skip a batch the original network gets wholly wrong (official objective): such
        # jobs leave this step's masked pass altogether.
        official = self.objective in ("official", "contrast")
        active = (ref_correct.view(k, n)[:, :own].any(1) if official
                  else torch.ones(k, dtype=torch.bool, device=x.device))
        rec = torch.zeros(k, device=x.device)
        if not active.any():
            return rec, active
        if not active.all():
            keep = active.repeat_interleave(n)
            x, y, ref_correct, job_class = x[keep], y[keep], ref_correct[keep], job_class[active]
            ref_acts = [r[keep] for r in ref_acts]
        rows = jobs[active]
        owner = torch.arange(len(rows), device=x.device).repeat_interleave(n)
        leaves = [lg[rows].requires_grad_() for lg in logits]
        masks = [torch.sigmoid(lf) for lf in leaves]
        acts: list[Tensor] = []
        fuse = self.fused and official  # the error computed at each point
        with self._precision(), masked(self.model, self.points, masks, owner, record=acts,
                                       against=ref_acts if fuse else None):
            out = self.model(x)
        if self.autocast:
            out, acts, ref_acts = out.float(), [a.float() for a in acts], [r.float() for r in ref_acts]
        loss, r = nad_loss(self.objective, out, y, acts, ref_acts, ref_correct, masks, beta[rows], n,
                           errors=acts if fuse else None, own=own, job_class=job_class)
        grads = torch.autograd.grad(loss.sum(), leaves)
        with torch.no_grad():
            for lg, g in zip(logits, grads):
                lg[rows] -= self.lr * F.normalize(g, dim=1)
        rec[active] = r.detach()
        return rec, active


def warn_result(sub: "SubArchitectures", untuned: bool = False, cli: bool = False) -> None:
    """The warnings a result calls for, as the CLI prints them: an untuned default beta, classes
    that skipped their steps or stopped at the step limit, points where classes keep every channel
    or none (no kappa, no hit rate there)."""
    beta_fix = "--beta elbow or --beta B" if cli else "NAD(..., beta='elbow') (the Elbow sweep) or beta=B"
    kept = sub.kept()
    if untuned:
        warnings.warn(f"beta {sub.config.get('beta')} is NAD's default, not tuned for this network; try {beta_fix}",
                      stacklevel=3)
    states = {c: sub.status.get(str(c), {}).get("state") for c in sub.classes}
    capped = [c for c, s in states.items() if s == "max_steps"]
    if capped:
        warnings.warn(f"{len(capped)} of {len(sub.classes)} classes stopped at the step limit before converging "
                      f"(classes {', '.join(map(str, capped[:10]))}); raise "
                      + ("--max-steps" if cli else "Convergence(max_steps=...)"), stacklevel=3)
    skipped = [c for c, s in states.items() if s not in (None, "converged", "max_steps", "done")]
    if skipped:
        warnings.warn(f"{len(skipped)} of {len(sub.classes)} classes skipped every step: the network got none of "
                      f"their images right (classes {', '.join(map(str, skipped[:10]))}); their masks are untouched; "
                      + ("--target prediction" if cli else "target='prediction'") + " uses the network's own answers",
                      stacklevel=3)
    edge = [(p, "every", kept[:, i].mean().item()) for i, p in enumerate(sub.points) if bool((kept[:, i] >= 1).all())]
    edge += [(p, "no", 0.0) for i, p in enumerate(sub.points) if bool((kept[:, i] <= 0).all())]
    if edge:
        warnings.warn(f"at {len(edge)} of {len(sub.points)} points every class keeps {edge[0][1]} channel "
                      f"({', '.join(p for p, _, _ in edge[:4])}): no kappa and no hit rate there; "
                      + ("a larger beta keeps fewer channels" if edge[0][1] == "every" else "a smaller beta keeps more"),
                      stacklevel=3)

