"""Kill anywhere: ``nadkit disentangle`` SIGKILLed at random moments and inside every write (a test
hook kills the process in the write window it names: deterministic) leaves its folder absent,
resumable or complete and valid, never mixed; and the run finished after the kills equals an
uninterrupted run bit for bit."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nadkit.partial import PartialRun
from nadkit.subarch import SubArchitectures

pytestmark = pytest.mark.slow  # runs NAD, trains, builds the book or opens a browser: not in make quick

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["disentangle", "--arch", "vgg16", "--classes", "0,1,2", "--steps", "3", "--batch-per-class", "2",
        "--class-batch", "1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def run(out: Path, extra: list[str] = (), kill_at: str | None = None, kill_after: float | None = None) -> str:
    """Run ``nadkit disentangle`` into ``out``, SIGKILLed by itself inside the first write window
    named ``kill_at`` (``nadkit.subarch._test_pause``), or by us ``kill_after`` seconds in:
    'killed' or 'finished'."""
    env = dict(ENV, NADKIT_TEST_KILL_AT=kill_at) if kill_at else ENV
    proc = subprocess.Popen([sys.executable, "-m", "nadkit"] + ARGS + list(extra) + ["--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        rc = proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
    assert rc in (0, -signal.SIGKILL), proc.stderr.read()[-2000:]
    return "finished" if rc == 0 else "killed"


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
    whole_dir, out = tmp_path / "whole", tmp_path / "cut"
    t0 = time.time()
    assert run(whole_dir) == "finished"
    duration = time.time() - t0
    whole = SubArchitectures.load(whole_dir)
    rng = random.Random(8)
    shaken = tmp_path / "random"
    for _ in range(3):  # at random moments, each run resuming the one before
        run(shaken, kill_after=rng.uniform(0.5, 0.8 * duration))
        state(shaken, whole)
    assert run(shaken) == "finished" and state(shaken, whole) == "complete"
    moments = [  # (what, the write window to die in), in the order a run makes them
        ("writing the run's config", "config.json"),
        ("writing the first class file", "class-0"),
        ("writing the second class file", "class-1"),
        ("writing the last class file", "class-2"),
        ("writing masks.safetensors", "masks.safetensors"),
        ("between masks and meta.json", "commit"),
        ("writing meta.json", "meta.json"),
    ]
    seen = [(what, run(out, kill_at=at), state(out, whole)) for what, at in moments]
    assert all(how == "killed" for _, how, _ in seen), seen  # every write was cut
    assert [st for *_, st in seen] == ["absent"] * 2 + ["resumable"] * 5, seen  # a cut final write: no result
    assert run(out) == "finished"
    assert state(out, whole) == "complete" and not (out / "partial").exists()
    # another run into the finished folder, cut between its masks and its meta.json: no result, not
    # the new masks under the old meta.json (which an older nadkit left, and loaded)
    assert run(out, ["--seed", "1"], kill_at="commit") == "killed" and not (out / "meta.json").exists()
    assert run(out, ["--seed", "1"]) == "finished"
    assert SubArchitectures.load(out).config["seed"] == 1
