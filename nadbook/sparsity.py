"""The sparsity sweep: NAD until convergence on all ten classes at betas from the card's beta
through the transition (where the kept share falls) to past the collapse (where the masked
network stops keeping its class), for instance 0 of each embedded network.

The grids are read off the shipped Elbow sweeps (four classes, betas 0.01 to 10): each starts at
the card's beta and is denser where the Elbow sweep's kept share and loss change fastest. Every run
uses the reference arithmetic (``fused=False``), as the shipped runs at the card's beta do, so that
run is the sweep's first point as it is, byte for byte, and all points share one arithmetic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from nadbook import book
from nadkit.findings import NAMES, SET_UNIT
from nadbook.verdicts import CANNOT, CLASS_UNIT, HOLDS, PAIR_UNIT

BETAS: dict[str, tuple[float, ...]] = {
    # card 0.3; Elbow kept share 0.83 at 0.3, 0.098 at 1.0; all ten classes: 0.78 at 0.4 with no
    # empty class-point, 0.49 at 0.5 with 7% of class-points empty, hence 0.45
    "vgg16": (0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5),
    # card 0.3; 0.83 at 1.0, 0.012 at 3.0
    "resnet50": (0.3, 0.6, 1.0, 1.3, 1.6, 2.0, 2.4, 3.0),
    # card 0.1; 0.85 at 0.1, 0.50 at 0.3, 0.086 at 1.0
    "densenet121": (0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.75, 1.0),
    # card 1.0; 0.89 at 1.0, 0.092 at 3.0
    "darts": (1.0, 1.3, 1.6, 1.8, 2.0, 2.4, 3.0, 4.0),
}


def folders(arch: str, s: book.Settings | None = None, instance: int = 0,
            progress: bool = True) -> list[Path]:
    """The sweep's result folders of ``arch`` (one per beta of ``BETAS``), each computed on first
    use (a killed run resumes where it stopped)."""
    s = s or book.Settings.of(archs=arch)
    return [book.folder(arch, replace(s, beta=b), weights=book.instance_option(instance), progress=progress)
            for b in BETAS[arch]]


def run(archs: list[str], instance: int = 0, betas: tuple[float, ...] | None = None,
        objective: str = "official") -> None:
    """Compute the sweep of each network in turn (or only ``betas``; with NAD's ``objective``),
    each beta's run and its evaluation (``at_beta``), printing each beta's wall time. Killed, it
    resumes where it stopped."""
    for arch in archs:
        s = replace(book.Settings.of(archs=arch), objective=objective)
        for b in betas or BETAS[arch]:
            start = time.time()
            row = summary(arch, s, instance, progress=True, betas=(b,), compute=True)[0]
            print(f"sweep {arch} instance {instance} beta {b} {objective}: {row['folder']} "
                  f"({time.time() - start:.0f} s)", flush=True)


def at_beta(folder: Path, s: book.Settings, progress: bool = True) -> dict:
    """Everything the sparsity chapter reads about one run of the sweep, each part cached beside
    the run as the other chapters' are: its kept share (overall and per point), how far it
    collapsed (empty class-points, the network's top answer), and its findings (NAD's, each
    heuristic's at NAD's counts, random channels'), from which ``nadbook.verdicts`` reads the
    effects."""
    from nadkit.findings import of_run, versus_nad
    from nadkit.sanity import collapse
    from nadkit.subarch import SubArchitectures

    sub = SubArchitectures.load(folder)
    report = book._with_uniform_p(book._evaluated(folder, s, "paper", progress), folder, s, progress)
    control = book._controls(folder, s, progress)
    rivals = {}
    for method in book.BASELINE_METHODS:
        b = book.baseline_folder(folder, method)
        if not (b / "meta.json").exists():
            book.pipeline.baseline(folder, method, b, device=s.device)
        rivals[method] = versus_nad(
            of_run(book._with_uniform_p(book._evaluated(b, s, "paper", progress), b, s, progress), control,
                   hit=book.control_hit(b, s, progress), cross=book._cross(b, s, progress),
                   hit_by_class=_by_class(b, s, control, progress)),
            sub.binary(), SubArchitectures.load(b).binary())
    kept = sub.kept()  # [classes, points]
    return {"beta": sub.config["beta"], "folder": folder.name, "kept": float(kept.mean()),
            "kept_per_point": kept.mean(0).tolist(),
            **collapse(sub.binary(), report["confusion"], control.get("cross_accuracy"), report["classes"]),
            "nad": of_run(report, control, hit_by_class=_by_class(folder, s, control, progress)),
            "rivals": rivals, "random": of_run(book.random_report(folder, s, progress))}


def _by_class(folder: Path, s: book.Settings, control: dict, progress: bool) -> list | None:
    """The run's hit rate per class and point on its control's mosaics, where it has them."""
    return book.control_hit_by_class(folder, s, progress) if control.get("random_hit_rate_draws") else None


def summary(arch: str, s: book.Settings | None = None, instance: int = 0, progress: bool = True,
            betas: tuple[float, ...] | None = None, compute: bool = False) -> list[dict]:
    """``at_beta`` for every beta of the sweep of ``arch`` (or of ``betas``) that has run (a beta
    still running or not started is left out, so the chapter shows what there is), or for all of
    them, computing what is missing, with ``compute``."""
    s = s or book.Settings.of(archs=arch)
    out = []
    for b in betas or BETAS[arch]:
        cfg = replace(s, beta=b).run_config(arch, weights=book.instance_option(instance))
        folder = book.run_dir(cfg)
        if compute:
            folder = book.folder(arch, replace(s, beta=b), weights=book.instance_option(instance), progress=progress)
        if (folder / "meta.json").exists():
            out.append(at_beta(folder, s, progress))
    return out


def chapter(archs: list[str], s: book.Settings, instance: int = 0, progress: bool = True) -> dict[str, list[dict]]:
    """What the sparsity chapter shows: in the full profile, ``summary`` of each network's sweep
    as far as it has run; in the smoke profile (the tests), the first network's first and last
    betas, computed, so that the chapter's code runs on a small sweep."""
    if book.profile() == "smoke":
        first = archs[0]
        return {first: summary(first, s, instance, progress, (BETAS[first][0], BETAS[first][-1]), compute=True)}
    return {a: rows for a in archs if (rows := summary(a, s, instance, progress))}


def used(arch: str, s: book.Settings, instance: int = 0, searches: bool = True) -> list:
    """The run folders the sparsity chapter reads for ``arch``, their findings computed: what
    ``book.precompute`` ships. Each beta of the sweep that has run, the chosen betas' runs on the
    other instances at its kept share (``replicated_betas``, ``contrast_chosen``; with the ablation of the first instance's), the paper
    objective's runs (``OBJECTIVE_BETAS``), each with its heuristics' runs."""
    out: list[Path] = []

    def add(rows: list[dict], settings: book.Settings, inst: int) -> None:
        for r in rows:
            folder = folder_at(arch, r["beta"], settings, inst)
            out.extend([folder, *(book.baseline_folder(folder, m) for m in book.BASELINE_METHODS)])

    def matched(settings: book.Settings, betas: tuple[float, ...]) -> None:
        for b in betas:
            for i in settings.instances:
                if i != instance and (f := matched_folder(arch, b, settings, i, compute=searches)) is not None:
                    at_beta(f, settings)
                    out.extend([f, *(book.baseline_folder(f, m) for m in book.BASELINE_METHODS)])
                    out.extend(book.searched(folder_at(arch, b, settings), arch, replace(settings, beta=b),
                                             book.instance_option(i)))

    add(summary(arch, s, instance, progress=True), s, instance)
    for b in replicated_betas([arch]).get(arch, ()):
        if b in ablated_betas([arch]).get(arch, ()):
            ablation_at(arch, b, s)  # cached inside the run's folder
    matched(s, replicated_betas([arch]).get(arch, ()))
    paper = replace(s, objective="paper")
    add(summary(arch, paper, instance, progress=True, betas=OBJECTIVE_BETAS.get(arch, ())), paper, instance)
    seen = replace(s, objective="contrast")
    add(summary(arch, seen, instance, progress=True, betas=CONTRAST_BETAS.get(arch, ())), seen, instance)
    matched(seen, contrast_chosen(arch, seen))
    return out


def matched_folder(arch: str, beta: float, s: book.Settings, instance: int, compute: bool = False,
                   progress: bool = True) -> Path | None:
    """The run of trained ``instance`` at the sparsity of instance 0's run at ``beta``
    (``book.like``: its kept share within ``nadbook.matched.TOLERANCE``, searched for from
    ``beta``); None where instance 0's run is not there, no comparable run exists, or (without
    ``compute``) the search's runs have not all run."""
    reference = folder_at(arch, beta, s)
    if not (reference / "meta.json").exists():
        return None
    return book.like(reference, arch, replace(s, beta=beta), book.instance_option(instance), progress=progress,
                     strict=True, compute=compute)


# The findings the sweep follows, and how each one's effect is read off a run's ``Finding``.
SWEPT = ("fewer", "more", "structure", "hit", "accuracy", "specific", "misjudged beyond chance")
# with a value per class (CLASS_UNIT) or per class pair (PAIR_UNIT, compared by QAP), or read off
# the classes' sets (SET_UNIT: the largest or smallest overlap over the points, or its spread over
# class pairs, compared by swapping classes' sets between NAD and the heuristic), NAD's own is
# testable on one run; at the chosen betas the per-run ones are confirmed on the other instances
CONFIRMED = ("hit", *(k for k in PAIR_UNIT if k in SWEPT), *SET_UNIT)


def _effect(key: str, f) -> tuple[float, float, float]:
    """(effect, low, high) of one run's finding: a 95% interval over classes where the finding has
    one value per class, none (nan) otherwise; "structure" as the share of testable points."""
    import numpy as np

    from nadkit.stats import mean_interval

    if key in CLASS_UNIT:  # values: per class, the difference over random, or the balanced accuracy
        v = mean_interval(np.asarray(f.values, dtype=float))
        return float(np.mean(f.values)), float(v.low), float(v.high)
    if key == "structure":
        n = len(f.values) - len(f.untestable)
        return (len(f.points) / n if n else float("nan")), float("nan"), float("nan")
    return float(f.estimate), float("nan"), float("nan")


def effects(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """One row per beta, method (NAD, each heuristic, random) and finding of ``SWEPT``: the kept
    share, the effect with its interval over classes where there is one, whether the finding
    holds for that method (by its own test against its null), and whether the run collapsed."""
    import pandas as pd

    out = []
    for r in rows:
        methods = {"NAD": r["nad"], **r["rivals"], "random": r["random"]}
        for method, found in methods.items():
            for key in SWEPT:
                if key not in found:
                    continue
                fx, low, high = _effect(key, found[key])
                out.append({"beta": r["beta"], "kept": r["kept"], "method": method, "finding": key,
                            "effect": fx, "low": low, "high": high, "holds": bool(found[key].holds),
                            "testable": bool(found[key].testable),
                            "empty": r["empty class-points"], "top answer": r["top answer share"],
                            "constant": r.get("constant sub-architectures", float("nan"))})
    return pd.DataFrame(out)


OWN_TESTED = CLASS_UNIT + CONFIRMED  # NAD's own tested on the class
OWN_HOW = "tested on the class against every heuristic"  # class by class or QAP, Holm over betas


def class_values(r: dict, key: str, method: str = "NAD") -> "numpy.ndarray | None":  # noqa: F821
    """One value per class of ``method``'s (NAD or a heuristic) finding ``key`` at the beta of
    row ``r``: the difference over random or the balanced accuracy (``CLASS_UNIT``), or for
    "hit" the class's hit rate averaged over the testable points (``Finding.by_class``); None
    where the row has no such values."""
    import numpy as np

    found = r["nad"] if method == "NAD" else r["rivals"][method]
    if key not in found:
        return None
    values = found[key].values if key in CLASS_UNIT else found[key].by_class
    return np.asarray(values, dtype=float) if len(values) else None


def own_test(r: dict, key: str, method: str) -> tuple[float, float, float] | None:
    """NAD against the heuristic ``method`` on the finding ``key`` (``OWN_TESTED``) at the beta of
    row ``r``, on the class as unit: the one-sided p that NAD is above, that it is below, and the
    smallest p the data could give. A Wilcoxon test over ``class_values``; for the misjudged
    findings QAP on the two similarity matrices (``stats.dif_ahead``: classes permuted, a pair
    moves as one); for the overlap findings (``SET_UNIT``) the classes' sets swapped between NAD
    and the heuristic (``Finding.nad_swap``, from ``findings.versus_nad``). None where the row
    lacks the values or NAD and the heuristic do not differ (below float resolution)."""
    import numpy as np
    from scipy import stats as st

    from nadkit.stats import dif_ahead

    if key in SET_UNIT:
        t = r["rivals"][method][key].nad_swap if key in r["rivals"][method] else []
        return tuple(t) if t and np.isfinite(t[0]) else None
    if key in PAIR_UNIT:
        a, b = r["nad"].get(key), r["rivals"][method].get(key)
        if a is None or b is None or not a.matrix or not b.matrix:
            return None
        t = dif_ahead(a.matrix, b.matrix, np.asarray(a.misjudged_as, dtype=bool))
        return None if not np.isfinite(t["p_greater"]) else (t["p_greater"], t["p_less"], t["p_floor"],
                                                             t.get("p_floor_less", t["p_floor"]))
    nad, rival = class_values(r, key), class_values(r, key, method)
    if nad is None or rival is None:
        return None
    d = (nad - rival)[np.isfinite(nad - rival)]
    d = np.where(np.abs(d) < 1e-6, 0.0, d)  # below float resolution: no difference
    if not np.any(d) or len(d) < 2:
        return None
    return (float(st.wilcoxon(d, alternative="greater").pvalue), float(st.wilcoxon(d, alternative="less").pvalue),
            2.0 ** -np.count_nonzero(d))  # the smallest one-sided p so many differing classes give


def nads_own(rows: list[dict], key: str) -> dict[float, tuple[bool, float]]:
    """Per beta, whether NAD's effect on the finding ``key`` (``OWN_TESTED``) exceeds every
    heuristic's at NAD's counts: one-sided, on the class as unit (``own_test``) per heuristic,
    Holm over the betas (per heuristic); NAD's own where every heuristic is beaten. Returns
    {beta: (own, largest adjusted p)}; betas where NAD and a heuristic do not differ (below float
    resolution), lack the values, or whose test's attainable smallest p (``own_test``'s third
    value) cannot reach Holm's threshold (``reachable_family``) leave the family and are left out:
    "cannot be tested here" there, never "no"."""
    import numpy as np

    from nadkit.overlap import holm

    methods = list(rows[0]["rivals"]) if rows else []
    adjusted, reach, behind = {}, {}, {}
    for m in methods:
        tests = [own_test(r, key, m) for r in rows]
        floors = [t[2] if t is not None else 1.0 for t in tests]
        family = reachable_family(floors)
        p = [tests[i][0] if i in family else np.nan for i in range(len(rows))]
        adjusted[m] = holm(p)
        reach[m] = [i in family for i in range(len(rows))]
        # the other way (the heuristic significantly ahead), in its own family of reachable tests
        floors = [(t[3] if len(t) > 3 else t[2]) if t is not None else 1.0 for t in tests]
        family = reachable_family(floors)
        behind[m] = holm([tests[i][1] if i in family else np.nan for i in range(len(rows))])
    out = {}
    for i, r in enumerate(rows):
        ps = [adjusted[m][i] for m in methods]
        if ps and all(np.isfinite(ps)) and all(reach[m][i] for m in methods):
            out[r["beta"]] = (bool(max(ps) < 0.05), float(max(ps)))
        elif any(np.isfinite(behind[m][i]) and behind[m][i] < 0.05 for m in methods):
            out[r["beta"]] = (False, 1.0)  # a heuristic significantly ahead: not NAD's own, tested
    return out


def reachable_family(floors, alpha: float = 0.05) -> set[int]:
    """The tests (indices) that stay in a Holm family: a test whose attainable smallest p
    (``floors``: ties of the statistic over the enumerated assignments, the number of differing
    classes, the draws) times the family's size is not below ``alpha`` could never be rejected at
    Holm's first step, so it leaves the family ("cannot be tested here"), and the family shrinks
    until every test left can reach its threshold."""
    import numpy as np

    family = {i for i, f in enumerate(floors) if np.isfinite(f) and f < alpha}
    while True:
        keep = {i for i in family if len(family) * floors[i] < alpha}
        if keep == family:
            return family
        family = keep


def measurable(r: dict) -> tuple[bool, str]:
    """Whether a beta's sub-architectures can show anything (``nadkit.sanity.measurable``, the one
    rule ``sanity.MEASURABLE_RULE``: masks not empty at most class-points, sub-architectures that
    mostly do not answer constantly, read from the masked network's cross-class accuracy), and why
    not."""
    from nadkit.sanity import measurable as can

    return can(r)


def _shares(values: list[float]) -> str:
    """Kept shares as a range in words: "0.49" or "0.22-0.78" (fractions of the channels)."""
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}-{hi:.2f}"


def verdict(rows: list[dict], key: str, named: bool = True) -> str:
    """Where along the sweep of one network the finding ``key`` holds for NAD, and where it is
    NAD's own, in words, from the numbers: kept-share ranges over the measurable betas (a beta
    whose masks collapsed is "not measurable" and counted apart). NAD's own is tested on the class
    (``nads_own``) for every finding of ``OWN_TESTED`` (all of ``SWEPT``)."""
    from nadkit.findings import NAMES

    ok = [r for r in rows if measurable(r)[0] and key in r["nad"]]
    lost = [r["beta"] for r in rows if not measurable(r)[0]]
    constant = []
    if key == "accuracy":  # a sub-architecture that names its class whatever the image keeps it trivially
        constant = [r["beta"] for r in ok if "specific" in r["nad"] and not r["nad"]["specific"].holds]
        ok = [r for r in ok if r["beta"] not in constant]
    name = f"*{NAMES[key]}* " if named else ""
    if not ok:
        return f"{name}not measurable at any beta of the sweep" + _constant(constant) + "."
    held = [r for r in ok if r["nad"][key].holds]
    text = (f"{name}holds at kept share {_shares([r['kept'] for r in held])} ({len(held)} of {len(ok)} "
            f"measurable betas)" if held else f"{name}not shown at any of the {len(ok)} measurable betas")
    if held and key in OWN_TESTED:
        own = nads_own(ok, key)
        mine = [r["kept"] for r in held if own.get(r["beta"], (False, 1.0))[0]]
        untested = [r["beta"] for r in held if r["beta"] not in own]
        why = ("the similarities do not differ enough" if key in PAIR_UNIT else
               "the overlap does not differ, or at too few classes" if key in SET_UNIT else "too few classes differ")
        if not any(r["beta"] in own for r in held):
            text += f"; whether it is NAD's own {CANNOT} ({why} for the smallest attainable p to reach the threshold)"
        else:
            text += (f"; NAD's own at kept share {_shares(mine)}" if mine else
                     "; NAD's own at none of the betas where that can be tested") + f" ({OWN_HOW})"
            if untested:
                text += f"; whether it is NAD's own {CANNOT} at beta {', '.join(f'{b:g}' for b in untested)} ({why})"
    if lost:
        text += f"; not measurable at beta {', '.join(f'{b:g}' for b in lost)} (collapsed)"
    return text + _constant(constant) + "."


def _constant(betas: list[float]) -> str:
    """Why a beta does not count for "keep their class": its sub-architectures are not specific."""
    if not betas:
        return ""
    return (f"; not measurable at beta {', '.join(f'{b:g}' for b in betas)}, where the sub-architectures are "
            "not specific to their class (they name it for other classes' images too, so keeping it says nothing)")


def headline(sweep: dict[str, list[dict]], see: str = "", reps: dict[str, dict] | None = None) -> str:
    """The sweep's result (chapter 01 carries it): where, over the networks swept, a finding of
    ``OWN_TESTED`` is NAD's own (tested on the class, Holm over betas), or that it is at no
    sparsity, or not testable;
    how far the sweep has got; and, with ``reps`` (``replications``), which findings hold on
    three instances at the betas chosen for replication and whether they are NAD's own there."""
    from nadkit.findings import NAMES

    if not sweep:
        return "The sparsity sweep has not run on any network here."
    own, testable, held = [], False, False
    for a, rows in sweep.items():
        ok = [r for r in rows if measurable(r)[0]]
        for key in OWN_TESTED:
            have = [r for r in ok if key in r["nad"] and all(key in f for f in r["rivals"].values())
                    and (key != "accuracy" or ("specific" in r["nad"] and r["nad"]["specific"].holds))]
            tested = nads_own(have, key)
            testable |= any(r["beta"] in tested and r["nad"][key].holds for r in have)
            held |= any(r["nad"][key].holds for r in have)
            kept = [r["kept"] for r in have if tested.get(r["beta"], (False, 1.0))[0] and r["nad"][key].holds]
            if kept:
                own.append(f"*{NAMES[key]}* on {a} at kept share {_shares(kept)}")
    done = ", ".join(f"{a} ({len(rows)} of {len(BETAS.get(a, rows))} betas)" for a, rows in sweep.items())
    lead = ("On the sparsity sweep (each network's first instance, from its card's beta to sparser ones), "
            "NAD beats every heuristic at its own channel counts, tested on the class, ")
    if own:
        text = lead + "for " + "; ".join(own)
    elif testable:
        text = lead + "at none of the betas where that can be tested"
    elif not held:
        text = ("On the sparsity sweep, none of the findings tested on the class holds for NAD at a measurable "
                "beta, so none can be NAD's own")
    else:
        text = ("On the sparsity sweep, whether NAD beats every heuristic at its own channel counts "
                f"{CANNOT}: where a finding holds, its test's smallest attainable p cannot reach the threshold")
    text += f" (networks swept: {done}{'; ' + see if see else ''})."
    return text + (" " + replicated_sentence(reps, short=True) if reps is not None else "")


def replicated_sentence(reps: dict[str, dict], keys: tuple[str, ...] = SWEPT, short: bool = False) -> str:
    """Which findings of ``keys`` hold on every instance's run at the betas chosen for replication, per
    network, and where they are NAD's own against the best heuristic at the same counts (or why
    that cannot be tested), in two sentences from the verdicts; ``short``: counts instead of
    names (chapter 01's answer)."""
    from nadkit.findings import NAMES

    if not reps:
        return "No beta chosen for replication has run on all three trained instances yet."
    n = max(len(r["kept"]) for r in reps.values())
    held, own, not_own, unconfirmed, untested = [], [], [], [], {}
    for where, r in reps.items():
        found = r["verdicts"]
        here = []
        for key in keys:
            v = found.get(key)
            if v is None or v.status != "holds" or not all(r["measurable"]):
                continue
            if key == "accuracy" and not (found.get("specific") and found["specific"].status == "holds"):
                continue  # kept trivially by a sub-architecture that is not specific
            here.append(f"*{NAMES[key]}*")
            name = f"*{NAMES[key]}* on {where}"
            by_class = r.get("class unit", {}).get(key)
            if by_class is not None and by_class["own"] is not None:  # tested on the class instead
                (own if by_class["own"] else unconfirmed).append(name)
            elif v.own is None:
                untested.setdefault(v.own_note.split(";")[0], []).append(name)
            else:
                (own if v.own else not_own).append(name)
        if here:
            held.append(f"on {where}, {_list(here)}")
    if not held:
        return f"At the betas chosen for replication, no finding holds on {n} trained instances."
    if short:
        n_held = len(own) + len(not_own) + len(unconfirmed) + sum(len(v) for v in untested.values())
        return (f"At the betas chosen for replication ({', '.join(reps)}), on {n} trained instances, "
                f"findings hold in {n_held} network-finding cells; NAD's own: {len(own)}, a heuristic as good: "
                f"{len(not_own)}, not confirmed on the class as unit: {len(unconfirmed)}, not testable with {n} "
                f"instances as the unit: {n_held - len(own) - len(not_own) - len(unconfirmed)}.")
    text = f"At the betas chosen for replication, on {n} trained instances: " + "; ".join(held) + " hold."
    parts = []
    if own:
        parts.append(f"NAD's own (above the best heuristic at its counts): {_list(own)}")
    if not_own:
        parts.append(f"a heuristic at the same counts does as well: {_list(not_own)}")
    if unconfirmed:
        parts.append(f"not confirmed as NAD's own when tested on the class as unit on the instances the beta was not "
                     f"chosen on: {_list(unconfirmed)}")
    if untested:
        parts.append(f"not testable as NAD's own with {n} instances as the unit: " + "; ".join(
            _list(items) + (f" ({why.replace('NAD ahead', 'NAD ahead of the best heuristic')})" if why else "")
            for why, items in untested.items()))
    return text + (" " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + "." if parts else "")


def _list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def folder_at(arch: str, beta: float, s: book.Settings | None = None, instance: int = 0) -> Path:
    """The run folder of ``arch`` at ``beta`` (trained instance ``instance``), run or not."""
    s = s or book.Settings.of(archs=arch)
    return book.run_dir(replace(s, beta=beta).run_config(arch, weights=book.instance_option(instance)))


def ablation_at(arch: str, beta: float, s: book.Settings | None = None, progress: bool = True) -> dict | None:
    """Chapter 05b's ablation (``book.ablation_of``) of the sweep's run of ``arch`` at ``beta``
    (first instance), computed on first use; None where that run has not finished."""
    s = s or book.Settings.of(archs=arch)
    folder = folder_at(arch, beta, s)
    return book.ablation_of(folder, s.device, progress) if (folder / "meta.json").exists() else None


# The betas judged on all three trained instances, by a rule fixed before their replication:
# the one ``informative`` picks on instance 0's sweep (measurable, specific, no empty point, NAD
# ahead of every heuristic on the most findings), where chapter 05b's ablation runs
# (``ablated_betas``), and the sparsest such beta (``sparsest_specific``). The other instances run
# at the kept share of instance 0's run there (``matched_folder``), not at the same beta.
PER_RUN = ("fewer", "more", "structure", "hit", "misjudged beyond chance")  # one value per run


def replicated_betas(archs: list[str]) -> dict[str, tuple[float, ...]]:
    """The betas the chapter judges on three instances: ``chosen`` on each sweep in the full profile; in the
    smoke profile (the tests) the first network's first beta, whose three instances' runs the
    other chapters already make, so the chapter's code runs on them."""
    if book.profile() == "smoke":
        return {archs[0]: (BETAS[archs[0]][0],)}
    return {a: bs for a in archs if (bs := chosen(summary(a, progress=False)))}


def chosen(rows: list[dict]) -> tuple[float, ...]:
    """The betas of a sweep (``at_beta`` rows) chosen for replication: ``informative``'s, then
    ``sparsest_specific``'s where it differs; none where no beta may be chosen."""
    picks = [r["beta"] for r in (informative(rows), sparsest_specific(rows)) if r is not None]
    return tuple(dict.fromkeys(picks))


def ablated_betas(archs: list[str]) -> dict[str, tuple[float, ...]]:
    """The betas of ``replicated_betas`` where chapter 05c ablates the first instance's run: the
    most informative one per network (the first). Not the sparsest specific one: there the sets
    are most of each layer, as at the card's beta, where chapter 05b could test little."""
    return {a: bs[:1] for a, bs in replicated_betas(archs).items()}


def sparsest_specific(rows: list[dict]) -> dict | None:
    """The sparsest beta of a sweep that may be chosen (``_chosen_ok``: measurable, specific to
    their class, a channel kept at every class-point); None where no beta is."""
    return min(ok, key=lambda r: r["kept"]) if (ok := [r for r in rows if _chosen_ok(r)]) else None


def _chosen_ok(r: dict) -> bool:
    """Whether a beta may be chosen (as informative, or as the sparsest specific): measurable, its
    sub-architectures specific to their class (``stats.specific_run``: balanced accuracy >=
    ``stats.SPECIFIC_MIN`` with an interval excluding 0.5) and no class-point empty, so that no beta
    just under the collapse rule's thresholds is chosen."""
    return (measurable(r)[0] and "specific" in r["nad"] and bool(r["nad"]["specific"].holds)
            and r["empty class-points"] == 0)


def replications(archs: list[str], s: book.Settings, progress: bool = True) -> dict[str, dict]:
    """``replication`` at every beta of ``replicated_betas``, keyed "ARCH at beta B", for those
    run on all three instances (in the smoke profile computed, so the tests run the code)."""
    smoke = book.profile() == "smoke"
    reps = {f"{a} at beta {b:g}": replication(a, b, s, progress, compute=smoke)
            for a, bs in replicated_betas(archs).items() for b in bs}
    return {k: r for k, r in reps.items() if r}


def ahead(r: dict) -> list[str]:
    """The per-run findings that hold for NAD at one beta of the sweep and where NAD's effect is
    above every heuristic's at its counts (description: one run cannot test it)."""
    from nadbook.verdicts import EFFECTS

    out = []
    for key in PER_RUN:
        if key in r["nad"] and r["nad"][key].holds:
            sign = EFFECTS[key][2]
            if all(sign * r["nad"][key].estimate > sign * f[key].estimate for f in r["rivals"].values() if key in f):
                out.append(key)
    return out


def informative(rows: list[dict]) -> dict | None:
    """The sweep's most informative beta for replication: among the betas that may be chosen
    (``_chosen_ok``: measurable, specific, no empty class-point), the one where NAD's effect is
    above every heuristic's on the most findings (``ahead``); the sparser one on a tie. None when
    NAD is ahead nowhere."""
    ok = [r for r in rows if _chosen_ok(r) and ahead(r)]
    return max(ok, key=lambda r: (len(ahead(r)), -r["kept"])) if ok else None


def replication(arch: str, beta: float, s: book.Settings | None = None, progress: bool = True,
                compute: bool = False) -> dict | None:
    """The verdicts at ``beta`` over the trained instances of ``s`` (all three but in the smoke profile) (``verdicts.network_verdicts``:
    replication on ``REPLICATE`` of 3 with none significant the other way, the best heuristic at
    NAD's counts as rival, NAD's own tested as in chapter 01), with each instance's kept share and
    whether it is measurable; None until every instance has run at ``beta`` (with
    ``compute``: computing what is missing)."""
    from nadkit.subarch import SubArchitectures
    from nadbook.verdicts import network_verdicts

    s = s or book.Settings.of(archs=arch)
    first = summary(arch, s, s.instances[0], progress, betas=(beta,), compute=compute)
    others = [matched_folder(arch, beta, s, i, compute, progress) for i in s.instances[1:]] if first else []
    if not first or not all(others):
        return None
    rows = [first[0], *(at_beta(f, s, progress) for f in others)]
    points = SubArchitectures.load(folder_at(arch, beta, s)).points
    found = network_verdicts(f"{arch} at beta {beta:g}", points, [r["nad"] for r in rows],
                             {m: [r["rivals"][m] for r in rows] for m in rows[0]["rivals"]})
    spec, kept = found.get("specific"), found.get("accuracy")
    if kept is not None and kept.status == "holds" and (spec is None or spec.status != "holds"):
        # a sub-architecture that names its class whatever the image keeps it trivially
        kept.status, kept.own, kept.own_note = CANNOT, None, "the sub-architectures are not specific"
    by_class = {k: own_on_classes(rows, k, s.instances) for k in CONFIRMED}
    for key, c in by_class.items():  # testable class by class: that test decides NAD's own
        v = found.get(key)
        if v is not None and v.status == "holds" and c["own"] is not None:
            how = ("pair by pair (QAP over classes)" if key in PAIR_UNIT else
                   "by swapping classes' sets" if key in SET_UNIT else "class by class")
            v.own, v.own_note = c["own"], (f"tested {how} against every heuristic on the instances the "
                                           "beta was not chosen on")
    return {"verdicts": found, "kept": [r["kept"] for r in rows], "betas": [r["beta"] for r in rows],
            "measurable": [measurable(r)[0] for r in rows], "class unit": by_class}


def own_on_classes(rows: list[dict], key: str, instances: list[int], chosen_on: int = 0) -> dict:
    """Whether NAD's ``key`` (``OWN_TESTED``) beats every heuristic at its counts class by class
    on each trained instance at one beta (rows: ``at_beta`` per instance): per instance the
    largest one-sided p over the heuristics (``own_test``: Wilcoxon over classes, QAP for the
    misjudged findings, class swaps for the overlap findings; NAD above each one: all must pass,
    so no correction) and whether some heuristic is significantly above NAD. The beta was chosen on instance ``chosen_on``, so only
    the others confirm: NAD's own where it passes on all of them and no instance goes the other
    way; "testable" is False where the test cannot give p < 0.05 (fewer than five classes differ
    from a heuristic, or nothing differs), and "own" None where a confirming instance is not
    testable."""
    import numpy as np

    p, against, testable = [], [], []
    for r in rows:
        tests = [own_test(r, key, m) for m in r["rivals"]]
        done = [t for t in tests if t is not None]
        p.append(float(max(t[0] for t in done)) if done else np.nan)
        against.append(any(t[1] < 0.05 for t in done))
        testable.append(bool(tests) and all(t is not None and t[2] < 0.05 for t in tests))
    confirm = [k for k, i in enumerate(instances) if i != chosen_on]
    ok = bool(confirm) and all(testable[k] for k in confirm)
    own = (all(p[k] < 0.05 for k in confirm) and not any(against)) if ok else None
    pooled = None
    if key in SET_UNIT and confirm and all(key in rows[k]["rivals"][m] and rows[k]["rivals"][m][key].nad_swap_dist
                                           for k in confirm for m in rows[k]["rivals"]):
        # ONE test per heuristic over the confirming instances (class swaps within each, pooled)
        # instead of every instance's own: NAD's own where every heuristic's pooled p is below 0.05
        from nadkit.stats import swap_pooled

        tests = {m: swap_pooled([rows[k]["rivals"][m][key].nad_swap_dist for k in confirm])
                 for m in rows[confirm[0]]["rivals"]}
        pooled = {m: [t["p_greater"], t["p_less"], t["p_floor"]] for m, t in tests.items()}
        reach = all(np.isfinite(t["p_greater"]) and t["p_floor"] < 0.05 for t in tests.values())
        own = (all(t["p_greater"] < 0.05 for t in tests.values())
               and not any(t["p_less"] < 0.05 for t in tests.values())) if reach else None
    return {"p": p, "other way": against, "testable": testable, "instances": list(instances),
            "chosen on": chosen_on, "own": own, "pooled": pooled}


def class_unit_sentence(reps: dict[str, dict], keys: tuple[str, ...] = CONFIRMED) -> str:
    """What the class-unit test of ``own_on_classes`` says at each chosen beta for each finding of
    ``keys``, in one sentence per network and finding, from the numbers: the largest p over the
    heuristics on each instance, and whether the instances the beta was not chosen on confirm it."""
    import numpy as np

    from nadkit.findings import NAMES

    out = []
    for where, r in reps.items():
        for key in keys:
            c = r.get("class unit", {}).get(key)
            if c is None:
                continue
            v = r["verdicts"].get(key)
            if v is None or v.status != "holds":
                out.append(f"On {where}, *{NAMES[key]}* does not hold on the trained instances, so whether it "
                           "is NAD's own does not arise.")
                continue
            ps = ", ".join(f"{'n/a' if not np.isfinite(q) else _p3(q)} on instance {i}"
                           + (" (where the beta was chosen)" if i == c["chosen on"] else "")
                           for q, i in zip(c["p"], c["instances"]))
            how = ("pair by pair (QAP over classes on NAD's similarities minus the heuristic's)" if key in PAIR_UNIT
                   else "with the class as unit (each class's set swapped between NAD and the heuristic)"
                   if key in SET_UNIT else "class by class (Wilcoxon over classes)")
            verdict = ("not testable here (too little differs on a confirming instance)" if c["own"] is None else
                       "NAD's own there: confirmed on every instance the beta was not chosen on" if c["own"] else
                       "not confirmed: not NAD's own there" + (" (a heuristic is significantly above NAD on some "
                                                               "instance)" if any(c["other way"]) else ""))
            out.append(f"On {where}, *{NAMES[key]}* tested {how} against every heuristic at NAD's counts "
                       f"(largest p over the heuristics): {ps}; {verdict}.")
    return " ".join(out) if out else "No chosen beta has run on every trained instance yet."


def _p3(p: float) -> str:
    """"p = 0.012" or "p < 0.001" (``stats.p_text``)."""
    from nadkit.stats import p_text

    return "p " + ("" if p < 0.001 else "= ") + p_text(p)


# The betas at which the paper's Eq. 13 objective (``--objective paper``) is run beside the
# authors' (first instance), about where that objective's own transition is: per activation it
# weighs beta (mu r)^2 + (r - mu r)^2, least at mu = 1 / (1 + beta), which falls below the
# binarising 0.5 for beta > 1. vgg16: its chosen beta 0.6, and 1.0 and 1.5; resnet50 and
# densenet121: 1.0, a beta of their sweeps. darts (about 2.5 times slower per step) not yet.
OBJECTIVE_BETAS: dict[str, tuple[float, ...]] = {
    "vgg16": (0.6, 1.0, 1.5), "resnet50": (1.0,), "densenet121": (1.0,)}


# The contrast objective's sweep (``--objective contrast``: the class's images as the official
# objective shows them, and as many of the other classes', which the masked network must not name;
# the term weighted like the CE term). Its transition from a probe (vgg16, four classes, 800 steps):
# kept 0.93 at beta 0.3, 0.12 at 0.6, so vgg16's official grid from 0.3 to 0.7; resnet50's official
# grid to 2.0 (at 1.0 the contrast objective keeps 0.71 with 4% of class-points empty: its
# transition lies lower, so 0.6 and 0.3 ran next).
CONTRAST_BETAS: dict[str, tuple[float, ...]] = {
    "vgg16": (0.3, 0.4, 0.45, 0.5, 0.6, 0.7), "resnet50": (0.3, 0.6, 1.0, 1.3, 1.6, 2.0)}


def contrast_chosen(arch: str, s: book.Settings | None = None) -> tuple[float, ...]:
    """The contrast objective's beta judged on all three instances (the other two at its kept
    share, ``matched_folder``): the sparsest specific one with no empty point on instance 0
    (``sparsest_specific``), once the sweep has run; none in the smoke profile."""
    if book.profile() == "smoke":
        return ()
    r = sparsest_specific(contrast(arch, s, progress=False))
    return (r["beta"],) if r is not None else ()


def objectives(arch: str, s: book.Settings | None = None, progress: bool = True, compute: bool = False,
               betas: tuple[float, ...] | None = None) -> dict[str, list[dict]]:
    """``at_beta`` of the runs with each objective ("official": the sweep's, "paper": Eq. 13) at
    ``OBJECTIVE_BETAS`` (or ``betas``), as far as they have run (with ``compute``: all)."""
    s = s or book.Settings.of(archs=arch)
    betas = betas or OBJECTIVE_BETAS.get(arch, ())
    return {o: summary(arch, replace(s, objective=o), 0, progress, betas, compute) for o in ("official", "paper")}


def objective_sentence(arch: str, by_objective: dict[str, list[dict]], sweep_rows: list[dict] | None = None) -> str:
    """What the paper's objective changes, as a bullet written from the numbers: per beta run with
    both objectives, the kept share and whether the sub-architectures are specific to their class;
    and, since beta weighs a different penalty in each loss, the authors' run of the sweep
    (``sweep_rows``) whose kept share is nearest to each paper run's, so the two are compared at
    the same sparsity too."""
    official = {r["beta"]: r for r in by_objective.get("official", [])}
    paper = by_objective.get("paper", [])
    pairs = [(official[r["beta"]], r) for r in paper if r["beta"] in official]
    if not pairs:
        return f"- The paper's objective: not run on {arch} yet."

    def said(r: dict) -> str:
        spec = r["nad"]["specific"]
        return (f"keeps {r['kept']:.2f} of the channels, balanced accuracy {spec.estimate:.2f} "
                f"({'specific' if spec.holds else 'not specific'} to its class"
                f"{'' if measurable(r)[0] else '; collapsed'})")

    parts = [f"at beta {o['beta']:g} the paper's objective {said(p)}, the authors' {said(o)}" for o, p in pairs]
    changed = [o["beta"] for o, p in pairs if o["nad"]["specific"].holds != p["nad"]["specific"].holds]
    end = (f"specificity changes with the objective at beta {', '.join(f'{b:g}' for b in changed)}" if changed
           else "the objective does not change whether the sub-architectures are specific")
    text = f"- The paper's objective (Eq. 13) on {arch}: " + "; ".join(parts) + f": {end}"
    if sweep_rows:
        near = []
        for p in paper:
            o = min(sweep_rows, key=lambda r: abs(r["kept"] - p["kept"]))
            same = o["nad"]["specific"].holds == p["nad"]["specific"].holds
            near.append(f"the paper's run at beta {p['beta']:g} (kept {p['kept']:.2f}) against the authors' at "
                        f"beta {o['beta']:g} (kept {o['kept']:.2f}): balanced accuracy "
                        f"{p['nad']['specific'].estimate:.2f} against {o['nad']['specific'].estimate:.2f}, "
                        + ("the same verdict" if same else "a different verdict"))
        text += ". At the nearest kept share of the sweep, " + "; ".join(near)
    return text + "."


def contrast(arch: str, s: book.Settings | None = None, progress: bool = True, compute: bool = False,
             betas: tuple[float, ...] | None = None, instance: int = 0) -> list[dict]:
    """``at_beta`` of the contrast objective's sweep of ``arch`` (``CONTRAST_BETAS``, or
    ``betas``) on ``instance``, sorted by beta, as far as it has run (with ``compute``: all)."""
    s = replace(s or book.Settings.of(archs=arch), objective="contrast")
    rows = summary(arch, s, instance, progress, betas or CONTRAST_BETAS.get(arch, ()), compute)
    return sorted(rows, key=lambda r: r["beta"])


def specific_and_sparse(rows: list[dict]) -> list[dict]:
    """The betas whose sub-architectures are specific to their class, measurable and with a
    channel at every point (``_chosen_ok``): where the findings can be read."""
    return [r for r in rows if _chosen_ok(r)]


def _span(rows: list[dict]) -> str:
    kept = [r["kept"] for r in rows]
    return f"{min(kept):.0%}" if len(kept) == 1 else f"{min(kept):.0%} to {max(kept):.0%}"


def _range(values: list[float]) -> str:
    lo, hi = f"{min(values):.2f}", f"{max(values):.2f}"
    return lo if lo == hi else f"{lo} to {hi}"


def objective_verdict(arch: str, official: list[dict], contrast_rows: list[dict]) -> dict:
    """Per network, the two objectives compared: for each, the betas where the sub-architectures
    are specific and sparse (``specific_and_sparse``) and the share of channels they keep there;
    for the contrast objective, the findings on which NAD beats every simple rule at one of those
    betas (``nads_own``, tested on the class against every heuristic, Holm over the betas), and
    the findings that cannot be tested there. Returns the numbers and ``sentence``, the verdict
    in words."""
    ok = {"official": specific_and_sparse(official), "contrast": specific_and_sparse(contrast_rows)}
    betas = {r["beta"] for r in ok["contrast"]}
    own, cannot = [], []
    for key in SWEPT:
        tested = {b: v for b, v in nads_own(contrast_rows, key).items() if b in betas} if betas else {}
        if any(v[0] for v in tested.values()):
            own.append(key)
        elif betas and not tested:
            cannot.append(key)

    def said(name: str, rows: list[dict], ran: list[dict]) -> str:
        if not ran:
            return f"the {name} objective has not run"
        betas = f"{len(ran)} beta{'s' if len(ran) > 1 else ''} run"
        if not rows:
            return f"with the {name} objective they are specific at none of the {betas}"
        bal = [r["nad"]["specific"].estimate for r in rows]
        return (f"with the {name} objective they are specific at {len(rows)} of the {betas}, keeping "
                f"{_span(rows)} of the channels (balanced accuracy {_range(bal)})")

    authors = said("authors'", ok["official"], official)
    text = f"On {arch}, {authors}; {said('contrast', ok['contrast'], contrast_rows)}"
    if ok["contrast"]:
        text += ("; there NAD beats every simple rule on " + _list([f"*{NAMES[k]}*" for k in own]) if own
                 else "; there NAD beats every simple rule on no finding")
        text += f" ({_list([f'*{NAMES[k]}*' for k in cannot])}: {CANNOT})" if cannot else ""
    return {"network": arch, "specific": {o: [r["beta"] for r in rows] for o, rows in ok.items()},
            "kept": {o: [r["kept"] for r in rows] for o, rows in ok.items()}, "own": own, "cannot": cannot,
            "sentence": text + "."}


def replicated_clause(where: str, rep: dict) -> str:
    """One bullet on a beta judged on every trained instance (``replication``): the kept shares
    (each instance at instance 0's, ``matched_folder``), whether the sub-architectures are
    specific to their class over the instances, and the findings where NAD beats every simple
    rule there."""
    found = rep["verdicts"]
    spec = found.get("specific")
    own = [f"*{NAMES[k]}*" for k, v in found.items() if v.status == "holds" and v.own]
    said = ("specific to their class" if spec is not None and spec.status == "holds" else
            f"not shown specific to their class ({spec.status if spec is not None else 'not measured'})")
    return (f"{where}, on all {len(rep['kept'])} trained instances (kept {_range(rep['kept'])}): {said}; "
            + ("NAD beats every simple rule on " + _list(own) if own else "NAD beats every simple rule on no finding")
            + ".")


def contrast_clause(by_arch: dict[str, list[dict]], see: str = "", reps: dict[str, dict] | None = None) -> str:
    """Chapter 01's clause on the objective that sees other classes: on which networks it gives
    sub-architectures specific to their class with a channel at every point, and how many
    channels they keep there ("" where it has not run); with ``reps`` (``replication`` of each
    network's ``contrast_chosen`` beta, by network), whether that holds on every trained instance."""
    ran = {a: rows for a, rows in by_arch.items() if rows}
    if not ran:
        return ""
    ok = {a: specific_and_sparse(rows) for a, rows in ran.items()}

    def where(a: str, rows: list[dict]) -> str:
        rep = (reps or {}).get(a)
        spec = rep["verdicts"].get("specific") if rep else None
        on = ("" if rep is None else f"; on all {len(rep['kept'])} trained instances" if spec is not None
              and spec.status == HOLDS else "; not on all trained instances")
        return f"{a} ({_span(rows)} of channels kept{on})"

    yes = [where(a, rows) for a, rows in ok.items() if rows]
    no = [a for a, rows in ok.items() if not rows]
    text = "an objective that also shows other classes' images makes them specific on " + (
        _list(yes) if yes else "none of the networks it ran on")
    text += f", not on {_list(no)}" if yes and no else ""
    return text + (f" ({see})" if see else "")
