"""Command line: ``nadkit train | disentangle | points | merge | baseline | evaluate | ablate``. Bad input ends
in one line and exit 2."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

from . import pipeline
from .anynet import input_channels, is_external
from .errors import NadkitError
from .files import atomic
from .findpoints import candidates
from .networks import ARCHS, check_arch
from .pipeline import ablation
from .results import ablation_text, report_text
from .subarch import SubArchitectures
from .train import default_out, train_network

ARCH_HELP = (f"one of {', '.join(ARCHS)} (embedded), torchvision:NAME, timm:NAME, or package.module:function "
             "(a callable that returns the nn.Module)")
NO_TRACEBACK = (NadkitError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def beta_arg(text: str) -> float | str:
    if text == "elbow":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'elbow'") from None


def steps_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or an integer") from None


class UsageError(Exception):
    """A command line argparse refused: reported like any bad input, in one line."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2) instead of the usage text."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}; see {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="nadkit", description="Neural Architecture Disentanglement (Hu et al., ICCV 2021)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an embedded network on Fashion-MNIST into --out (a new folder under runs/)")
    t.add_argument("--arch", required=True, help=f"one of {', '.join(ARCHS)}")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder for ARCH.safetensors and ARCH.json (default: a new folder under "
                                               "runs/; pass --out data/models to replace the shipped network)")
    t.add_argument("--permute-labels", type=int, default=None, metavar="SEED",
                   help="train on labels permuted once by SEED, without augmentation (the data-randomisation test)")
    t.add_argument("--subset", type=int, default=None, help="train on the first N training images only")

    d = sub.add_parser("disentangle", help="learn per-class sub-architectures into --out")
    d.add_argument("--arch", required=True, help=ARCH_HELP)
    d.add_argument("--points", default=None,
                   help="auto (the outputs of the stem, every block and the last feature map; the default for "
                        "networks by string) or comma-separated module names (see nadkit points); default for "
                        f"{', '.join(ARCHS)}: the authors' points")
    d.add_argument("--dataset", default="fashion-mnist")
    d.add_argument("--classes", default="all", help="'all' or comma-separated class ids, e.g. 0,3,5")
    d.add_argument("--beta", type=beta_arg, default=None, help="a number, or 'elbow' (default: the network card's)")
    d.add_argument("--lr", type=float, default=0.1)
    d.add_argument("--steps", type=steps_arg, default=None,
                   help="'auto' (until the binarised masks stop changing) or a number of updates per class "
                        "(default: the network card's, auto)")
    d.add_argument("--max-steps", type=int, default=None,
                   help="the guard of --steps auto (default: the card's; paper scale: 21 passes over a class)")
    d.add_argument("--batch-per-class", type=int, default=16)
    d.add_argument("--class-batch", type=int, default=None, help="classes per forward pass (default: all)")
    d.add_argument("--objective", default="official", help="official (the authors' code), paper (Eq. 13) or contrast (official, "
                   "and other classes' images must not be named the class)")
    d.add_argument("--target", default="label",
                   help="what the masked network keeps: label (the authors') or prediction (the network's own "
                        "output: for untrained or randomised networks, which get no image right)")
    d.add_argument("--augment", default=None, choices=["authors"],
                   help="authors: their RandomResizedCrop(scale 0.08-1.25) and flip on NAD's training images "
                        "(default: none; images are shown as for testing)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu")
    d.add_argument("--weights", default=None,
                   help="a state dict file (.safetensors, or .pth read with weights_only), 'torchvision' (paper "
                        "scale, from the torchvision cache), 'none' (random weights), 'randomized:K' (top K blocks "
                        "re-drawn) or 'instance:S' (the instance trained from seed S); default: the shipped network")
    d.add_argument("--image-size", type=int, default=224, help="paper scale: image side after the transforms")
    d.add_argument("--precision", default="fp32", help="fp32, or bf16 (autocast; for GPUs)")
    d.add_argument("--unfused", dest="fused", action="store_false",
                   help="the reference arithmetic: no BatchNorm folded, the mask and its error by autograd "
                        "(slower; what the book's shipped results were computed with)")
    d.add_argument("--mean", type=floats_arg, default=None,
                   help="image folders: per-channel mean to normalise with, e.g. 0.5,0.5,0.5 (default: ImageNet's; "
                        "give your network's own)")
    d.add_argument("--std", type=floats_arg, default=None, help="image folders: per-channel std (default: ImageNet's)")
    d.add_argument("--resize", type=int, default=None,
                   help="image folders: side the test images are resized to before the centre crop of --image-size "
                        "(default: 8/7 of it, 256 for 224)")
    d.add_argument("--workers", type=int, default=0, help="paper scale: image-reading processes")
    d.add_argument("--decode", default="workers",
                   help="paper scale: decode JPEGs in the workers (PIL) or on the device (nvJPEG on a GPU)")
    d.add_argument("--out", required=True)
    d.add_argument("--allow-other-weights", action="store_true",
                   help="replace results in --out learned on other weights of the network (refused otherwise)")

    q = sub.add_parser("points", help="list a network's candidate mask points, their output shapes, and which "
                                      "--points auto picks")
    q.add_argument("--arch", required=True, help=ARCH_HELP)
    q.add_argument("--dataset", default="fashion-mnist")
    q.add_argument("--image-size", type=int, default=224, help="image folders: image side")

    m = sub.add_parser("merge", help="assemble finished classes in DIR/partial into the result (after torchrun "
                                     "on machines that did not share a file system)")
    m.add_argument("folder")
    m.add_argument("--allow-other-weights", action="store_true",
                   help="merge classes learned on other weights than the network's now")

    b = sub.add_parser("baseline", help="sub-architectures with a result's channel counts, chosen by a heuristic "
                                        "instead of NAD (evaluate them like any result)")
    b.add_argument("folder", help="a nadkit disentangle result")
    b.add_argument("--method", required=True, choices=("mean-activation", "taylor", "model-lego", "random"))
    b.add_argument("--per-class", type=int, default=64, help="training images per class that score the channels")
    b.add_argument("--device", default="cpu")
    b.add_argument("--out", required=True)

    e = sub.add_parser("evaluate", help="per-layer similarity, hit rate, accuracy and misjudgment of a result")
    e.add_argument("folder")
    e.add_argument("--hit-protocol", default="paper", choices=("paper", "authors"),
                   help="paper: 1,000 mosaics at twice the input size, top 5%%; authors: their cam_2x2.py, 100 "
                        "mosaics resized to the input, 8-bit map resized bicubically, top 10%%")
    e.add_argument("--mosaics", type=int, default=None, help="default: the protocol's (1000 or 100)")
    e.add_argument("--top", type=float, default=None, help="fraction of pixels kept in hit-rate maps "
                                                           "(default: the protocol's, 0.05 or 0.10)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", default=None, help="also write the figures to this JSON file")
    e.add_argument("--test-per-class", type=int, default=None,
                   help="only the first N test images of each class (a quick look; default: all)")
    e.add_argument("--allow-other-weights", action="store_true",
                   help="evaluate masks on a network whose weights differ from those they were learned on")
    add_network_options(e)

    a = sub.add_parser("ablate", help="zero each class's top-k channels at a point (NAD's ranking, random and "
                                      "heuristic controls) and measure every class: are the channels necessary?")
    a.add_argument("folder", help="a nadkit disentangle result")
    a.add_argument("--points", default=None, help="comma-separated point names (default: all)")
    a.add_argument("--k", default="auto", help="'auto' (1, 2, 4, ... up to the largest set kept at the point, "
                                               "and the median set) or comma-separated numbers of channels")
    a.add_argument("--orders", default="nad,mean-activation,taylor,model-lego",
                   help="rankings of each class's channels to ablate by (nad first; the heuristics of baseline)")
    a.add_argument("--draws", type=int, default=100, help="uniformly random channel sets per k")
    a.add_argument("--popularity-draws", type=int, default=10,
                   help="random sets per class and k matched to how many classes keep each channel")
    a.add_argument("--per-class", type=int, default=20, help="test images of each class")
    a.add_argument("--device", default="cpu")
    a.add_argument("--out", default=None, help="folder for the results (default: FOLDER/ablation)")
    a.add_argument("--allow-other-weights", action="store_true",
                   help="ablate on a network whose weights differ from those the masks were learned on")
    add_network_options(a)
    add_network_options(b)
    return p


def add_network_options(p: argparse.ArgumentParser) -> None:
    """--arch, --weights, --dataset: for a result saved by NAD.fit in Python, which names no network."""
    p.add_argument("--arch", default=None, help="the network, for a result that does not name it (saved by NAD.fit "
                                                "in Python): " + ARCH_HELP)
    p.add_argument("--weights", default=None, help="its weights file (checked against the sha256 the masks record)")
    p.add_argument("--dataset", default=None, help="the data, for a result that does not name it: fashion-mnist or "
                                                   "imagefolder:ROOT")
    p.add_argument("--image-size", type=int, default=None,
                   help="image folders: image side (default: the one the result records)")
    p.add_argument("--resize", type=int, default=None, help="image folders: side before the centre crop (default: the "
                                                           "result's)")
    p.add_argument("--mean", type=floats_arg, default=None, help="image folders: per-channel mean (default: the "
                                                                 "result's)")
    p.add_argument("--std", type=floats_arg, default=None, help="image folders: per-channel std (default: the result's)")


def network_options(args: argparse.Namespace) -> dict:
    """The network, data and preprocessing options of evaluate, ablate and baseline, checked."""
    for name in ("image_size", "resize"):
        v = getattr(args, name, None)
        if v is not None and v < (32 if name == "image_size" else 1):
            raise NadkitError(f"--{name.replace('_', '-')} must be >= {32 if name == 'image_size' else 1}, got {v}")
    return {"arch": args.arch, "weights": args.weights, "dataset": args.dataset,
            **{k: getattr(args, k) for k in ("image_size", "resize", "mean", "std") if getattr(args, k, None) is not None}}


def print_preprocessing(folder: str, network: dict) -> None:
    """One line on stderr: the preprocessing evaluate/ablate apply to an image folder (the recorded one,
    or the options' where given)."""

    sub = pipeline.with_network(SubArchitectures.load(folder), **network)
    if str(sub.config.get("dataset") or "").startswith("imagefolder:"):
        spec = pipeline.spec_of(sub.config)
        print(f"preprocessing: {pipeline.split(spec, 'test').describe()}", file=sys.stderr)


def floats_arg(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated numbers, e.g. 0.5,0.5,0.5") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated finite numbers, e.g. 0.5,0.5,0.5")
    return values


def print_ablation(r: dict) -> None:
    """Per point: selectivity at the matrix k for NAD and its controls (mean over classes)."""

    print(ablation_text(r["classes"], list(r["config"]["orders"]), r["results"], r["matrix_k"]))


def ints_arg(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NadkitError(f"{what} must be 'auto' or comma-separated whole numbers, got {text!r}") from None


def print_report(r: dict) -> None:
    """The per-point and per-class tables and the summary figures, as plain text (``Evaluation.summary()``)."""

    print(report_text(r))


def print_points(arch: str, dataset: str, image_size: int = 224) -> None:
    """``nadkit points``: every module with a 4-D output, its shape, and the auto rule's choice."""

    spec = pipeline.Spec(arch, dataset, image_size=image_size, weights="none")
    classes = len(pipeline.split(spec, "test").class_names)
    model, points = pipeline.network(arch, dataset, "none", "cpu", classes, "auto", image_size)
    shape = spec.input_shape(input_channels(model))
    auto = {p.module for p in points}
    theirs = [] if is_external(arch) else pipeline.mask_points(arch, model)
    authors = {p.module for p in theirs}
    print(f"{arch} on {list(shape)} images: * = --points auto" + ("" if is_external(arch) else ", A = the authors'")
          + ";\nlast column: why a module cannot be a point")
    found = candidates(model, shape)
    width = max(len(o.name) for o in found) + 2
    for o in found:
        mark = ("*" if o.name in auto else " ") + ("A" if o.name in authors else " ")
        print(f"{mark} {o.name:<{width}}{o.kind[:20]:<21}{str(list(o.shape[1:])):<16}{o.flaw}".rstrip())
    if authors and authors != auto:
        print(f"auto differs from the authors' points: {len(auto - authors)} only in auto "
              f"({', '.join(sorted(auto - authors)[:4])}), {len(authors - auto)} only in the authors' "
              f"({', '.join(sorted(authors - auto)[:4])})")
    for p in theirs:
        if p.relu:
            print(f"the authors' point {p.name} takes {p.module}'s output after the network's functional ReLU "
                  "(auto: before it)")
    if authors and authors == auto and not any(p.relu for p in theirs):
        print("auto picks the authors' points")


def run(args: argparse.Namespace) -> None:

    if getattr(args, "out", None) == "" or getattr(args, "folder", None) == "":
        raise NadkitError("an empty folder name was given; name the folder (e.g. --out runs/vgg16)")

    if args.command == "train":

        out = args.out or default_out(check_arch(args.arch, external=False))
        card = train_network(check_arch(args.arch, external=False), epochs=args.epochs, seed=args.seed, out=out,
                             permute_labels=args.permute_labels, subset=args.subset)
        print(json.dumps(card, indent=1))
        print(f"{args.arch} written to {out}", file=sys.stderr)
    elif args.command == "disentangle":
        fields = {k: v for k, v in vars(args).items() if k not in ("command", "out", "allow_other_weights")}
        spec = pipeline.Spec(**fields)
        from dataclasses import replace

        # bad arguments refused before anything is printed or loaded (the card's beta and steps come later)
        pipeline.check_settings(replace(spec, beta=0.02 if spec.beta is None else spec.beta,
                                        steps="auto" if spec.steps is None else spec.steps))
        if spec.dataset.startswith("imagefolder:") and int(os.environ.get("RANK", 0)) == 0:
            print(f"preprocessing: {pipeline.split(spec, 'train').describe()}", file=sys.stderr)
        sub = pipeline.disentangle(spec, args.out, allow_other_weights=args.allow_other_weights)
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"{len(sub.classes)} sub-architectures of {args.arch} in {args.out} "
                  f"(beta {sub.config['beta']}, {sub.kept().mean().item():.1%} of channels kept on average)")
            capped = [c for c in sub.classes if sub.status.get(str(c), {}).get("state") == "max_steps"]
            if capped:
                print(f"{len(capped)} of {len(sub.classes)} classes stopped at the step limit before converging "
                      f"(classes {', '.join(map(str, capped[:10]))}); raise --max-steps to let them converge")
    elif args.command == "points":
        if args.image_size < 32:
            raise NadkitError(f"image-size must be >= 32 (the networks halve it 5 times), got {args.image_size}")
        print_points(args.arch, args.dataset, args.image_size)
    elif args.command == "merge":
        sub = pipeline.merge(args.folder, allow_other_weights=args.allow_other_weights)
        print(f"merged {len(sub.classes)} classes into {args.folder}")
    elif args.command == "baseline":
        sub = pipeline.baseline(args.folder, args.method.replace("-", " "), args.out, args.per_class, args.device,
                                network=network_options(args))
        print(f"{args.method} sub-architectures of {len(sub.classes)} classes in {args.out}")
    elif args.command == "evaluate":
        network = network_options(args)
        print_preprocessing(args.folder, network)
        report = pipeline.evaluate(args.folder, args.mosaics, args.top, args.seed, args.device,
                                   hit_protocol=args.hit_protocol, allow_other_weights=args.allow_other_weights,
                                   test_per_class=args.test_per_class, network=network)
        print_report(report)
        if args.json:

            atomic(Path(args.json), lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    elif args.command == "ablate":

        ks = None if args.k == "auto" else ints_arg(args.k, "--k")
        points = [p.strip() for p in args.points.split(",") if p.strip()] if args.points else None
        print_preprocessing(args.folder, network_options(args))
        result = ablation(args.folder, args.out, points, ks, args.orders.split(","), args.draws,
                          args.popularity_draws, args.per_class, args.device,
                          allow_other_weights=args.allow_other_weights, network=network_options(args))
        print_ablation(result)


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The CLI's warnings: one line each, without the source line Python would print."""
    print("nadkit: warning: " + " ".join(str(message).split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:

    try:
        args = build_parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.showwarning = one_line_warning
            run(args)
    except (UsageError, *NO_TRACEBACK) as e:
        print("nadkit: error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message
        return 2
    except BrokenPipeError:  # the reader of our output left (| head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("nadkit: interrupted; finished classes are saved, re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
