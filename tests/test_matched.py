"""Replication at matched sparsity (``nadbook.matched``): the search for the beta at which another
run keeps a reference's share of channels, on kept-share curves whose answer is known."""

import math
from pathlib import Path

import pytest

from nadbook import matched


def fake(curve, monkeypatch):
    """Runs named by their beta, keeping ``curve(beta)``; the betas run, in order."""
    visited = []
    monkeypatch.setattr(matched, "kept", lambda f: curve(float(f.name)))

    def run(beta):
        visited.append(beta)
        return Path(str(beta))
    return run, visited


def test_next_beta_interpolates_in_log_beta_inside_a_bracket():
    b = matched.next_beta({0.1: 0.9, 0.4: 0.5}, 0.7)
    assert b == pytest.approx(0.2, rel=0.01)  # halfway in log beta: halfway in kept on a log-linear curve


def test_next_beta_steps_away_from_one_side_at_most_a_factor_of_four():
    assert matched.next_beta({0.3: 0.9}, 0.5) == 0.6      # keeps too much: twice the beta
    assert matched.next_beta({0.3: 0.2}, 0.5) == 0.15     # keeps too little: half
    far = matched.next_beta({0.3: 0.845, 0.6: 0.844}, 0.95)  # nearly flat: the step is clamped
    assert far >= 0.3 / 4 - 1e-9


@pytest.mark.parametrize("target", [0.2, 0.5, 0.8])
def test_search_finds_the_share_on_a_smooth_curve(monkeypatch, target):
    run, visited = fake(lambda b: 1 / (1 + (b / 0.5) ** 3), monkeypatch)
    beta, _, kept = matched.search(target, 0.5, run)
    assert abs(kept - target) <= matched.TOLERANCE
    assert visited[0] == 0.5 and len(visited) <= matched.MAX_RUNS


def test_search_takes_the_reference_beta_when_it_is_close_enough(monkeypatch):
    run, visited = fake(lambda b: 0.82, monkeypatch)
    assert matched.search(0.824, 0.3, run)[0] == 0.3 and visited == [0.3]


def test_search_says_no_comparable_run_where_the_masks_jump(monkeypatch):
    run, visited = fake(lambda b: 0.98 if b < 0.2 else 0.1, monkeypatch)  # whole, then collapsed
    assert matched.search(0.6, 0.3, run) is None
    assert len(visited) == matched.MAX_RUNS and len(set(visited)) == len(visited)


def test_the_search_path_depends_only_on_the_runs_it_visits(monkeypatch):
    curve = lambda b: math.exp(-2 * b)  # noqa: E731
    paths = []
    for _ in range(2):
        run, visited = fake(curve, monkeypatch)
        matched.search(0.3, 0.2, run)
        paths.append(visited)
    assert paths[0] == paths[1]
