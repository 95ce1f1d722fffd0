"""Training the embedded networks: seeded SGD with a one-cycle schedule, then a JSON card."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from .data import SubsetImages, fashion_mnist
from .errors import NadkitError
from .networks import build_network, check_arch, weights_sha256
from .files import atomic, fsync_dir


@torch.no_grad()
def accuracy(model: nn.Module, images, labels, batch: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on already-normalised ``images``."""
    model.eval()
    correct = sum((model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
                  for i in range(0, len(labels), batch))
    return correct / len(labels)


def default_out(arch: str) -> Path:
    """A new folder under ``runs/`` for a training run: never the shipped ``data/models``."""
    stem = Path("runs") / f"train-{arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = stem, 1
    while out.exists():
        n += 1
        out = stem.with_name(f"{stem.name}-{n}")
    return out


def train_network(arch: str, epochs: int = 3, seed: int = 0, batch: int = 128, lr: float = 0.1,
                  out: Path | str | None = None, permute_labels: int | None = None,
                  subset: int | None = None) -> dict:
    """Train the embedded ``arch`` on Fashion-MNIST; write ``out/arch.safetensors`` and its card.

    ``out`` defaults to a new folder under ``runs/``; the shipped networks in ``data/models`` are
    replaced only when ``out`` names that folder explicitly. Written atomically either way.
    ``permute_labels=S`` trains on the first ``subset`` training images with their labels
    permuted once by seed S and without augmentation, so that the network memorises them: the
    data-randomisation test of Adebayo et al. (2018). Its card records the training accuracy on
    those (permuted) labels.
    """
    check_arch(arch, external=False)
    if epochs < 1 or batch < 1 or not lr > 0:
        raise NadkitError(f"epochs and batch must be >= 1 and lr > 0, got {epochs}, {batch} and {lr}")
    if subset is not None and subset < batch:
        raise NadkitError(f"--subset must be at least the batch ({batch}) images, got {subset}")
    out = Path(out) if out is not None else default_out(arch)
    if out.exists() and not out.is_dir():
        raise NadkitError(f"--out {out} is a file; name a folder for {arch}.safetensors and {arch}.json")
    model, card = _fit(arch, epochs, seed, batch, lr, permute_labels, subset)
    save_network(model, card, out)
    return card


def _fit(arch: str, epochs: int, seed: int, batch: int, lr: float, permute_labels: int | None = None,
         subset: int | None = None) -> tuple[nn.Module, dict]:
    """The training itself: seeded SGD with a one-cycle schedule; the model and its card."""
    torch.manual_seed(seed)
    train, test = fashion_mnist("train"), fashion_mnist("test")
    x_test = test.load(torch.arange(len(test)))
    labels = train.labels
    if subset is not None or permute_labels is not None:
        keep = torch.arange(min(subset or len(train), len(train)))
        train = SubsetImages(train, keep)
        labels = train.labels
        if permute_labels is not None:
            labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(permute_labels))]
    augment = permute_labels is None
    model = build_network(arch).to(memory_format=torch.channels_last)  # faster convs on CPU
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * (len(train) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    gen = torch.Generator().manual_seed(seed)
    start = time.time()
    bar = tqdm(total=steps, desc=f"train {arch}")
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(len(train) // batch):
            idx = order[i * batch:(i + 1) * batch]
            x, y = train.load(idx), labels[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            if augment:
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = x.contiguous(memory_format=torch.channels_last)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    card = {
        "arch": arch, "dataset": "fashion-mnist", "input": [1, 32, 32],
        "test_accuracy": round(accuracy(model, x_test, test.labels), 4),
        "epochs": epochs, "seed": seed, "batch": batch, "max_lr": lr,
        "training_seconds": round(time.time() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    if subset is not None or permute_labels is not None:
        card |= {"subset": len(train), "permuted_labels_seed": permute_labels,
                 "train_accuracy": round(accuracy(model, train.load(torch.arange(len(train))), labels), 4)}
    return model, card


def save_network(model: nn.Module, card: dict, out: Path) -> None:
    """Write ``ARCH.safetensors`` and ``ARCH.json`` (which records the weights' sha256) into ``out``.

    A new folder is written whole under a temporary name and renamed once. Into an existing folder
    each file is renamed in, weights first: a pair cut between the two renames is caught on load,
    the card's sha256 not matching the weights."""
    arch = card["arch"]
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    card = dict(card, weights_sha256=weights_sha256(model))
    old_card = out / f"{arch}.json"
    try:
        old = json.loads(old_card.read_text()) if old_card.exists() else {}
    except (OSError, ValueError):
        old = {}
    card["nad"] = old.get("nad", {}) if isinstance(old, dict) else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            atomic(tmp / f"{arch}.safetensors", lambda p: save_file(state, str(p)))
            atomic(tmp / f"{arch}.json", lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(out.parent)
        return
    atomic(out / f"{arch}.safetensors", lambda p: save_file(state, str(p)))
    atomic(out / f"{arch}.json", lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
