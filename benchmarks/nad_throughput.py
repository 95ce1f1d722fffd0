"""NAD throughput on the embedded networks, measured side by side in one run (not a test).

For each network: NAD image-steps per second with all ten classes in one pass and with one class
at a time (equal work: ten classes, the same steps), and plain batched inference images per
second at the same batch (160), both for the network as loaded ("plain", contiguous tensors) and in
channels_last (which NAD uses, and which is faster here too), in inference mode; NAD / the faster of the
two is the figure that counts. One NAD step costs about three forward
passes (reference forward, masked forward, backward to the masks), so NAD / inference has a limit
near 0.33.

    python benchmarks/nad_throughput.py [--archs vgg16,resnet50] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nadkit.data import ClassBatches, fashion_mnist
from nadkit.disentangle import NAD
from nadkit.networks import ARCHS, load_network
from nadkit.points import mask_points


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(arch: str, data, steps: int, rounds: int, per_class: int = 16) -> dict:
    model = load_network(arch)
    nad = NAD(model, mask_points(arch, model), beta=0.02, steps=steps, batch_per_class=per_class)
    classes = list(range(10))
    work = len(classes) * per_class * steps  # image-steps
    x = ClassBatches(data, classes, per_class, seed=0).next()[0]
    plain = load_network(arch)  # as loaded: contiguous tensors
    x_cl = x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def inference():
        for _ in range(steps):
            plain(x)

    @torch.inference_mode()
    def inference_cl():
        for _ in range(steps):
            model(x_cl)  # NAD has put this copy's weights in channels_last

    runs = {"batched": lambda: nad.fit(data, classes, progress=False),
            "one_class": lambda: nad.fit(data, classes, class_batch=1, progress=False),
            "inference": inference, "inference_cl": inference_cl}
    NAD(model, nad.points, steps=2, batch_per_class=per_class).fit(data, classes, progress=False)  # warm-up
    inference()
    inference_cl()
    times = {k: [] for k in runs}
    for _ in range(rounds):  # interleaved, so that drifts in machine load hit all three alike
        for k, fn in runs.items():
            times[k].append(seconds(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    r = {"arch": arch, "batched": work / med["batched"], "one_class": work / med["one_class"],
         "inference": len(x) * steps / med["inference"], "inference_cl": len(x) * steps / med["inference_cl"]}
    r["nad_over_fastest_inference"] = r["batched"] / max(r["inference"], r["inference_cl"])
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
          f"median of {args.rounds} interleaved rounds")
    print(f"{'network':<12}{'batched':>10}{'one class':>11}{'speed-up':>10}{'inference':>11}{'NAD/inf':>9}"
          f"{'inference':>11}{'NAD/inf':>9}")
    print(f"{'':<12}{'img-step/s':>10}{'img-step/s':>11}{'':>10}{'plain':>11}{'plain':>9}"
          f"{'chan.last':>11}{'ch.last':>9}{'fastest':>9}")
    results = []
    for arch in args.archs.split(","):
        r = measure(arch, data, args.steps, args.rounds)
        results.append(r)
        print(f"{arch:<12}{r['batched']:>10.0f}{r['one_class']:>11.0f}{r['batched'] / r['one_class']:>9.2f}x"
              f"{r['inference']:>11.0f}{r['batched'] / r['inference']:>9.3f}"
              f"{r['inference_cl']:>11.0f}{r['batched'] / r['inference_cl']:>9.3f}"
              f"{r['nad_over_fastest_inference']:>9.3f}", flush=True)
    if args.json:
        import json
        import platform

        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "steps": args.steps,
                "rounds": args.rounds, "machine": platform.processor() or platform.machine()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
