"""The README's "Your own network" script, executed exactly as the README shows it."""

import re
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # runs NAD, trains, builds the book or opens a browser: not in make quick

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_script() -> str:
    """The first python block of the README's section "Your own network"."""
    text = README.read_text()
    section = text[text.index("## Your own network"):]
    section = section[:section.index("\n## ", 1)]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_script_runs_as_shown(tmp_path, monkeypatch, capsys):
    code = readme_script()
    assert "TensorDataset" in code and "class Net(nn.Module)" in code and "SubArchitectures.load" in code
    assert "report.summary()" in code and "to_frame()" in code
    monkeypatch.chdir(tmp_path)
    space: dict = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), space)
    subs, report, ablation = space["subs"], space["report"], space["ablation"]
    assert subs.classes == [0, 1, 2, 3] and len(subs.points) == 2
    assert (tmp_path / "runs" / "my-net" / "meta.json").is_file()
    assert len(report.accuracy.subarch) == 4 and report.hit_rate is not None
    assert set(ablation.points) == set(subs.points)
    assert torch.equal(subs.steps, torch.tensor([20, 20, 20, 20]))
    out = capsys.readouterr().out
    assert report.summary() in out and "0.5: a constant answer" in out and "<SubArchitectures" in out
    assert "output=0" in README.read_text() and "names=[" in README.read_text()  # the selector, named points
