"""torchrun faults: a rank that dies makes the others stop within NADKIT_DIST_TIMEOUT with one line
naming it (not wait at a barrier for days); re-running the same command resumes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nadkit.subarch import SubArchitectures

pytestmark = pytest.mark.slow  # runs NAD, trains, builds the book or opens a browser: not in make quick

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["disentangle", "--arch", "vgg16", "--classes", "0,3,6,9", "--steps", "2", "--batch-per-class", "2",
        "--class-batch", "1"]


def torchrun(out: Path, logs: Path, **env) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **env)
    t0 = time.time()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "--log-dir", str(logs), "--redirects", "3", "-m", "nadkit"] + ARGS + ["--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    return run, time.time() - t0


def rank_stderr(logs: Path, rank: int) -> str:
    (path,) = logs.rglob(f"attempt_0/{rank}/stderr.log")
    return path.read_text()


def test_a_dead_rank_stops_the_others_in_time_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    run, seconds = torchrun(out, tmp_path / "logs1", NADKIT_TEST_DIE_RANK="1", NADKIT_DIST_TIMEOUT="15")
    assert run.returncode != 0
    err = [line for line in rank_stderr(tmp_path / "logs1", 0).splitlines() if line.strip() and not line.startswith("NAD")]
    assert len(err) == 1 and err[0].startswith("nadkit: error: rank 1 of 2 stopped answering"), err
    assert "Traceback" not in rank_stderr(tmp_path / "logs1", 0)
    assert seconds < 120
    finished = sorted(p.name for p in (out / "partial").glob("class-*"))
    assert finished == ["class-0.safetensors", "class-6.safetensors"]  # rank 0's share, saved
    run, _ = torchrun(out, tmp_path / "logs2")
    assert run.returncode == 0, run.stderr[-3000:]
    sub = SubArchitectures.load(out)
    assert sub.classes == [0, 3, 6, 9] and not (out / "partial").exists()
    assert json.loads((out / "timing.json").read_text())["classes_run"] == 2  # only 3 and 9 ran again


def test_a_rank_that_never_joins_is_one_line(tmp_path):
    """Rank 1 of a world of 2 started alone: init waits NADKIT_DIST_TIMEOUT, then says so."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), RANK="0", LOCAL_RANK="0", WORLD_SIZE="2",
               MASTER_ADDR="127.0.0.1", MASTER_PORT="29517", NADKIT_DIST_TIMEOUT="3")
    run = subprocess.run([sys.executable, "-m", "nadkit"] + ARGS + ["--out", str(tmp_path / "x")], env=env,
                         capture_output=True, text=True, timeout=120)
    err = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(err) == 1 and "not all 2 torchrun processes joined" in err[0], run.stderr
