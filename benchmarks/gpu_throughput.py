"""NAD on a GPU at paper scale: VGG16 and ResNet50 at 224x224, random weights, synthetic images
held on the GPU (so that only the optimizer is measured). One run prints every figure, side by side:

- the authors' setting: one class at a time, 16 images, fp32;
- ours: as many classes per pass as fit in memory, bf16 autocast, channels_last;
- the same network's bf16 inference images per second (channels_last, batch 256);
- how long 1,000 ImageNet classes take at the authors' budget (21 passes over ~1,281 images per
  class) at each speed, on one GPU and on eight.

    python benchmarks/gpu_throughput.py [--archs vgg16,resnet50] [--steps 20] [--classes 64]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nadkit import Engine
from nadkit.disentangle import NAD
from nadkit.networks import load_network
from nadkit.points import mask_points

IMAGENET_CLASS_IMAGES, EPOCHS, CLASSES = 1281, 21, 1000


class GPUImages:
    """A pool of random images on the GPU, ``per_class`` for each of ``classes`` labels."""

    def __init__(self, classes: int, per_class: int, size: int, device: str):
        self.labels = torch.arange(classes).repeat_interleave(per_class)
        self.class_names = [str(c) for c in range(classes)]
        self.pool = torch.randn(len(self.labels), 3, size, size, device=device)

    def load(self, indices, train=False):
        return self.pool[indices.to(self.pool.device)]


def timed(fn, device) -> float:
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(arch: str, data: GPUImages, steps: int, size: int, device: str) -> dict:
    classes = list(range(len(data.class_names)))
    work = lambda k: k * 16 * steps  # noqa: E731  image-steps

    model = load_network(arch, "imagefolder:/synthetic", weights="none").to(device)
    points = mask_points(arch, model)
    authors = NAD(model, points, beta=0.02, steps=steps,
                  engine=Engine(input_shape=(3, size, size), channels_last=False, fused=False))
    authors.run(data, classes[:1], class_batch=1, progress=False)  # warm-up
    t_authors = timed(lambda: authors.run(data, classes[:4], class_batch=1, progress=False), device)

    ours = NAD(model, points, beta=0.02, steps=steps,
               engine=Engine(input_shape=(3, size, size), precision="bf16"))
    k = min(len(classes), ours.classes_that_fit())
    ours.run(data, classes[:k], class_batch=k, progress=False)  # warm-up (and cudnn autotuning)
    t_ours = timed(lambda: ours.run(data, classes[:k], class_batch=k, progress=False), device)

    x = torch.randn(256, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)  # (ours ran on a folded copy of it)

    @torch.no_grad()
    def infer():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(steps):
                model(x)

    infer()
    t_inf = timed(infer, device)
    return {"arch": arch, "authors": work(4) / t_authors, "ours": work(k) / t_ours, "classes_per_pass": k,
            "inference": 256 * steps / t_inf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="vgg16,resnet50")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--classes", type=int, default=64, help="synthetic classes available to one pass")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--json", default=None, help="also write the figures here (the book's Paper scale chapter reads them)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_throughput.py needs a CUDA GPU")
    device = "cuda"
    torch.backends.cudnn.benchmark = True
    data = GPUImages(args.classes, 24, args.size, device)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.size}x{args.size}, {args.steps} steps")
    print(f"{'network':<10}{'authors':>12}{'ours':>12}{'classes/pass':>14}{'speed-up':>10}"
          f"{'bf16 inference':>16}{'ours/inf':>10}")
    print(f"{'':<10}{'img-step/s':>12}{'img-step/s':>12}{'':>14}{'':>10}{'img/s':>16}{'':>10}")
    rows = []
    for arch in args.archs.split(","):
        r = measure(arch, data, args.steps, args.size, device)
        total = CLASSES * EPOCHS * IMAGENET_CLASS_IMAGES
        r.update({"speed_up": r["ours"] / r["authors"], "ours_over_inference": r["ours"] / r["inference"],
                  "hours_1000_classes_authors_1gpu": total / r["authors"] / 3600,
                  "hours_1000_classes_ours_1gpu": total / r["ours"] / 3600,
                  "hours_1000_classes_ours_8gpu": total / r["ours"] / 3600 / 8})
        rows.append(r)
        print(f"{arch:<10}{r['authors']:>12.0f}{r['ours']:>12.0f}{r['classes_per_pass']:>14}"
              f"{r['ours'] / r['authors']:>9.1f}x{r['inference']:>16.0f}{r['ours'] / r['inference']:>10.3f}", flush=True)
        for name in ("authors", "ours"):
            hours = total / r[name] / 3600
            print(f"    1,000 ImageNet classes x {EPOCHS} passes, {name}: {hours:.1f} h on one GPU, "
                  f"{hours / 8:.1f} h on eight")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                               "steps": args.steps, "size": args.size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
