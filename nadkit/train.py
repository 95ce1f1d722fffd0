"""Training the embedded networks: seeded SGD with a one-cycle schedule, then a JSON card."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from .data import fashion_mnist
from .networks import MODELS_DIR, build_network, check_arch


@torch.no_grad()
def accuracy(model: nn.Module, images, labels, batch: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on already-normalised ``images``."""
    model.eval()
    correct = sum((model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
                  for i in range(0, len(labels), batch))
    return correct / len(labels)


def train_network(arch: str, epochs: int = 3, seed: int = 0, batch: int = 128, lr: float = 0.1,
                  out: Path | None = None) -> dict:
    """Train the embedded ``arch`` on Fashion-MNIST; write ``out/arch.safetensors`` and its card."""
    check_arch(arch)
    torch.manual_seed(seed)
    train, test = fashion_mnist("train"), fashion_mnist("test")
    x_test = test.load(torch.arange(len(test)))
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
            x, y = train.load(idx), train.labels[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x).contiguous(memory_format=torch.channels_last)
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
    out = Path(out or MODELS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"{arch}.safetensors"))
    card_path = out / f"{arch}.json"
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    card["nad"] = old.get("nad", {})
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card
