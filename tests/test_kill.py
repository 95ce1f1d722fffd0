"""Kill anywhere: ``nadkit disentangle`` SIGKILLed at random moments and inside every write (a test
hook widens each write's window) leaves its folder absent, resumable or complete and valid, never
mixed; and the run finished after the kills equals an uninterrupted run bit for bit."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from nadkit.subarch import PartialRun, SubArchitectures

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["disentangle", "--arch", "vgg16", "--classes", "0,1,2", "--steps", "3", "--batch-per-class", "2",
        "--class-batch", "1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), NADKIT_TEST_WRITE_DELAY="0.4")


def start(out: Path, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nadkit"] + ARGS + extra + ["--out", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(out: Path, seen, extra: list[str] = (), limit: float = 120) -> str:
    """Start a run and SIGKILL it the moment ``seen(out, elapsed)`` holds: 'killed', or 'finished'."""
    proc = start(out, list(extra))
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < limit:
        if seen(out, time.time() - t0):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "killed"
        time.sleep(0.005)
    rc = proc.wait()
    assert rc == 0, proc.stderr.read()[-2000:]
    return "finished"


def tmp(pattern: str):
    return lambda out, _: any(out.glob(pattern)) or any(out.glob(f"partial/{pattern}"))


def state(out: Path, whole: SubArchitectures) -> str:
    """'absent', 'resumable' or 'complete'; fails on anything else (a mixed or damaged folder)."""
    if (out / "meta.json").exists():
        sub = SubArchitectures.load(out)  # raises if masks and meta.json are not one commit
        assert sub.classes == whole.classes and all(torch.equal(sub.masks[p], whole.masks[p]) for p in whole.points)
        return "complete"
    classes = sorted((out / "partial").glob("class-*.safetensors")) if out.exists() else []
    if not classes:
        return "absent"
    part = PartialRun(out, PartialRun.recorded_config(out), create=False)
    assert part.done() == part.present(), "a partial class file is damaged"
    return "resumable"


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(tmp_path):
    """Up to three attempts: the harness catches each write window by polling, and on a busy
    machine it can miss one ("finished" instead of "killed"); every attempt asserts everything."""
    for attempt in range(3):
        try:
            return _sigkill_anywhere(tmp_path / f"attempt{attempt}")
        except AssertionError:
            if attempt == 2:
                raise


def _sigkill_anywhere(tmp_path):
    tmp_path.mkdir()
    whole_dir, out = tmp_path / "whole", tmp_path / "cut"
    t0 = time.time()
    assert kill_when(whole_dir, lambda *_: False) == "finished"
    duration = time.time() - t0
    whole = SubArchitectures.load(whole_dir)
    rng = random.Random(8)
    early = lambda: rng.uniform(0.2, 0.6 * duration)  # noqa: E731 - before the run could finish
    moments = [
        ("at random", lambda o, t, at=early(): t > at),
        ("at random", lambda o, t, at=early(): t > at),
        ("after the first class", lambda o, t: (o / "partial" / "class-0.safetensors").exists()),
        ("writing a class file", tmp(".class-*.tmp")),
        ("writing masks.safetensors", tmp(".masks.safetensors.*.tmp")),
        ("between masks and meta.json", lambda o, t: (o / "masks.safetensors").exists()
         and not (o / "meta.json").exists()),
        ("writing meta.json", tmp(".meta.json.*.tmp")),
    ]
    seen = []
    for what, when in moments:
        how = kill_when(out, when)
        seen.append((what, how, state(out, whole)))
    assert kill_when(out, lambda *_: False) == "finished"
    assert state(out, whole) == "complete" and not (out / "partial").exists()
    assert all(how == "killed" for _, how, _ in seen[2:]), seen  # every write was cut
    assert [st for *_, st in seen[-3:]] == ["resumable"] * 3, seen  # a cut final write leaves no result
    # another run into the finished folder, cut between its masks and its meta.json: no result, not
    # the new masks under the old meta.json (which an older nadkit left, and loaded)
    t_run = time.time()

    def between(o, t):  # the new masks are in place
        try:
            return (o / "masks.safetensors").stat().st_mtime > t_run
        except FileNotFoundError:
            return False

    seen.append(("another run, between", kill_when(out, between, ["--seed", "1"]), "?"))
    assert seen[-1][1] == "killed" and not (out / "meta.json").exists(), seen  # absent, resumable
    assert kill_when(out, lambda *_: False, ["--seed", "1"]) == "finished"
    assert SubArchitectures.load(out).config["seed"] == 1
    print(f"\n{len([s for s in seen if s[1] == 'killed'])} kills: {seen}")
