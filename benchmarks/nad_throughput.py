"""NAD throughput on the embedded networks, measured side by side in one run (not a test).

For each network, interleaved in every round (so that drifts in machine load hit all alike):
NAD image-steps per second with all ten classes in one pass, with the reference arithmetic
(``fused=False``: what the book's shipped results were computed with) and with the fused step
(BatchNorms folded into the convolutions, mask and error in one function: the default); the
fused step with one class at a time (equal work); and plain batched inference images per second
at the same batch (160), in inference mode, for the network as loaded (contiguous tensors), in
channels_last, and (for reference) folded in channels_last. NAD / the faster of the first two is
the figure that counts: one NAD step costs about three forward passes (reference forward, masked
forward, backward to the masks), so it has a limit near 0.33.

    python benchmarks/nad_throughput.py [--archs vgg16,resnet50] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nadkit.data import ClassBatches, fashion_mnist
from nadkit import Engine
from nadkit.disentangle import NAD
from nadkit.fold import fold_batchnorm
from nadkit.networks import ARCHS, load_network
from nadkit.points import mask_points


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(arch: str, data, steps: int, rounds: int, per_class: int = 16) -> dict:
    model = load_network(arch)
    points = mask_points(arch, model)
    nads = {f: NAD(load_network(arch), points, beta=0.02, steps=steps, batch_per_class=per_class,
                   engine=Engine(fused=f))
            for f in (False, True)}
    classes = list(range(10))
    work = len(classes) * per_class * steps  # image-steps
    x = ClassBatches(data, classes, per_class, seed=0).next()[0]
    x_cl = x.contiguous(memory_format=torch.channels_last)
    plain = load_network(arch).eval()  # as loaded: contiguous tensors
    cl = load_network(arch).eval().to(memory_format=torch.channels_last)
    folded = fold_batchnorm(load_network(arch).eval(), {p.module for p in points})[0]
    folded.to(memory_format=torch.channels_last)

    def inference(net, images):
        @torch.inference_mode()
        def run():
            for _ in range(steps):
                net(images)
        return run

    runs = {"reference": lambda: nads[False].run(data, classes, progress=False),
            "fused": lambda: nads[True].run(data, classes, progress=False),
            "one_class": lambda: nads[True].run(data, classes, class_batch=1, progress=False),
            "inference": inference(plain, x), "inference_cl": inference(cl, x_cl),
            "inference_folded": inference(folded, x_cl)}
    for f in (False, True):  # warm-up
        NAD(model, points, steps=2, batch_per_class=per_class, engine=Engine(fused=f)).run(data, classes, progress=False)
    for k in ("inference", "inference_cl", "inference_folded"):
        runs[k]()
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            times[k].append(seconds(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    r = {"arch": arch} | {k: (work if k in ("reference", "fused", "one_class") else len(x) * steps) / med[k]
                          for k in runs}
    fastest = max(r["inference"], r["inference_cl"])
    r["reference_over_fastest_inference"] = r["reference"] / fastest
    r["nad_over_fastest_inference"] = r["fused"] / fastest
    r["nad_over_contiguous_inference"] = r["fused"] / r["inference"]
    r["nad_over_folded_inference"] = r["fused"] / r["inference_folded"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    data = fashion_mnist("train")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps x 10 classes x 16 images, "
          f"median of {args.rounds} interleaved rounds; image-steps/s and images/s")
    print(f"{'network':<12}{'NAD ref.':>9}{'NAD fused':>10}{'speed-up':>9}{'1 class':>9}{'inf.':>7}{'inf. cl':>8}"
          f"{'folded':>7}{'ref/inf':>8}{'NAD/inf':>8}{'/contig':>8}{'/folded':>8}")
    results = []
    for arch in args.archs.split(","):
        r = measure(arch, data, args.steps, args.rounds)
        results.append(r)
        print(f"{arch:<12}{r['reference']:>9.0f}{r['fused']:>10.0f}{r['fused'] / r['reference']:>8.2f}x"
              f"{r['one_class']:>9.0f}{r['inference']:>7.0f}{r['inference_cl']:>8.0f}{r['inference_folded']:>7.0f}"
              f"{r['reference_over_fastest_inference']:>8.3f}{r['nad_over_fastest_inference']:>8.3f}"
              f"{r['nad_over_contiguous_inference']:>8.3f}{r['nad_over_folded_inference']:>8.3f}", flush=True)
    if args.json:
        import json
        import platform

        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "steps": args.steps,
                "rounds": args.rounds, "machine": platform.processor() or platform.machine()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
