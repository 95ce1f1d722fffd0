"""The verdict writer: every sentence of the book that states a result is written here, from the
findings (``nadkit.findings``), so that it changes when they do.

Status words, one set everywhere (``STATUSES``): "holds" (significant, the effect at least the
smallest worth reporting of ``EFFECTS``, a class interval excluding its null), "holds, a simple
rule as good" / "holds, a simple rule better" (a heuristic at the same channel counts is not
beaten / is significantly ahead), "negligible" (significant, below the smallest effect), "not
shown", "cannot be tested here" (the data cannot reach the threshold: each test's attainable
smallest p, after multiplicity, decides, never "no"). Intervals are bootstrap intervals over
classes clipped to the measure's range (``RANGES``); over three instances no interval is given.
NAD's own on the overlap findings is one test pooled over the instances (``stats.swap_pooled``).

For one network, a finding's verdict carries its status over the trained instances, the points
where it holds by name, its effect (over classes with a bootstrap interval for the class-unit
findings, over instances without one), the strongest rival at the same channel counts (the
heuristic of ``book.BASELINE_METHODS`` whose effect is largest) with its effect, and whether NAD
beats every heuristic, tested on the finding's unit (the class: Wilcoxon over classes; the Dif
findings: QAP on the class-pair similarities; the overlap findings: classes' sets swapped between
NAD and the heuristic, pooled over the instances). ``lead`` and ``grid`` write the book's first
screen from these verdicts, ``bullets`` a chapter's closing bullets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from nadkit.findings import (CANNOT, HOLDS, HOLDS_AS_GOOD, HOLDS_BETTER, NAMES, NEGLIGIBLE, NOT_SHOWN,  # noqa: F401
                             PER_POINT, REPLICATE, SET_UNIT, STATUSES, Finding, replicated)
from nadkit.stats import ALPHA, SPECIFIC_MIN, bounded_interval, dif_ahead, swap_pooled

# How each finding's effect is read: its scale and unit in words, the direction of "stronger",
# and the smallest effect worth reporting (the single table of them; ``smallest_effects`` says it
# in words): below it a significant finding is "negligible".
EFFECTS = {
    "fewer": ("kappa", 1.0, -1, 0.1),
    "more": ("kappa", 1.0, +1, 0.1),
    "structure": ("share of testable points uneven", 1.0, +1, 0.0),
    "hit": ("hit-rate gap over random", 1.0, +1, 0.05),
    "accuracy": ("accuracy over random, points", 100.0, +1, 5.0),
    "specific": ("balanced accuracy", 1.0, +1, SPECIFIC_MIN),
    "misjudged": ("Dif x100", 100.0, +1, 1.0),
    "misjudged beyond chance": ("Dif beyond chance x100", 100.0, +1, 1.0),
    "top confusion": ("share of classes", 1.0, +1, 0.0),
}
# Each measure's null and range (as scaled by EFFECTS): an interval is clipped to the range, and
# "holds" needs it to exclude the null.
NULLS = {"specific": 0.5}  # the others: 0
RANGES = {"fewer": (-np.inf, 1.0), "more": (-np.inf, 1.0), "structure": (0.0, 1.0), "hit": (-1.0, 1.0),
          "accuracy": (-100.0, 100.0), "specific": (0.0, 1.0), "misjudged": (-200.0, 200.0),
          "misjudged beyond chance": (-200.0, 200.0), "top confusion": (0.0, 1.0)}


def smallest_effects() -> str:
    """The smallest effect worth reporting per finding, in words (the book prints it)."""
    parts = []
    for key, (what, _, sign, size) in EFFECTS.items():
        if size == 0:
            parts.append(f"*{NAMES[key]}*: any significant {what}")
        elif key == "specific":
            parts.append(f"*{NAMES[key]}*: {what} at least {size:g} (0.5 is a constant answer), and no "
                         "sub-architecture naming its class for 90% or more of other classes' images counted specific")
        else:
            parts.append(f"*{NAMES[key]}*: {what} {'at most' if sign < 0 else 'at least'} {sign * size:+g}")
    return "; ".join(parts) + "."
CLASS_UNIT = ("accuracy", "specific")
FEW = "fewer than 5 classes differ from the rival"  # one-sided Wilcoxon: 4 classes give p >= 1/16
PAIR_UNIT = ("misjudged", "misjudged beyond chance")  # compared by QAP on the similarity matrices
SAME = "the similarities do not differ from the rival's"
SAME_SETS = "the overlap does not differ from the rival's"
FLOOR = "its smallest attainable p cannot reach 0.05"
AHEAD = "the heuristic significantly ahead"


UNSIGNED = ("specific", "top confusion", "structure")  # shares and rates: no sign to show


def sig(x: float, digits: int = 2, signed: bool = True) -> str:
    """``x`` to ``digits`` significant digits (with its sign unless ``signed`` is False); "n/a"
    for a missing number."""
    if x is None or not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    decimals = max(digits - 1 - int(np.floor(np.log10(abs(x)))), 0)
    rounded = round(x, decimals)  # 0.00999 rounds to 0.010: count its digits, not the input's
    if rounded != 0:
        decimals = max(digits - 1 - int(np.floor(np.log10(abs(rounded)))), 0)
    return f"{x:{'+' if signed else ''}.{decimals}f}"


@dataclass
class Effect:
    """An effect's estimate with its 95% interval over ``n`` units of ``unit``."""

    estimate: float
    low: float = float("nan")
    high: float = float("nan")
    n: int = 0
    unit: str = "instances"
    signed: bool = True

    @classmethod
    def over(cls, values, unit: str = "instances", bounds: tuple[float, float] = (-np.inf, np.inf)) -> "Effect":
        """The mean of ``values``, with a 95% percentile bootstrap interval over them clipped to
        ``bounds`` (the measure's range) where they are classes or class pairs; over instances
        (three: nothing to resample, and a t interval with 2 degrees of freedom leaves the
        measure's range) no interval: the instances' own tests decide."""
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
        if len(v) == 0:
            return cls(float("nan"), n=0, unit=unit)
        if unit == "instances" or len(v) < 2 or np.ptp(v) == 0:
            return cls(float(v.mean()), n=len(v), unit=unit)
        b = bounded_interval(v, *bounds)
        return cls(b.estimate, b.low, b.high, len(v), unit)

    def excludes(self, null: float) -> bool | None:
        """Whether the interval excludes ``null``; None where there is no interval."""
        if not np.isfinite(self.low):
            return None
        return bool(self.low > null or self.high < null)

    def text(self) -> str:
        if not np.isfinite(self.estimate):
            return "n/a"
        s = self.signed
        if not np.isfinite(self.low):
            return f"{sig(self.estimate, signed=s)} ({self.n} {self.unit[:-1] if self.n == 1 else self.unit})"
        return f"{sig(self.estimate, signed=s)} [{sig(self.low, signed=s)}, {sig(self.high, signed=s)}]"


@dataclass
class NetworkVerdict:
    """One finding on one network, over its trained instances, with its rival and whether it is
    NAD's own. ``sentence()`` says it in words."""

    network: str
    key: str
    status: str
    holds_in: int
    instances: int
    points: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    untestable: list[str] = field(default_factory=list)
    effect: Effect | None = None
    rival: str | None = None
    rival_effect: Effect | None = None
    own: bool | None = None
    own_note: str = ""
    near: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return NAMES[self.key]

    @property
    def outdone(self) -> bool:
        """Whether a heuristic at NAD's counts is significantly *above* NAD on at least
        ``REPLICATE`` instances (the tested comparison, read from ``own_note``)."""
        m = re.search(r"behind on (\d+) of", self.own_note)
        return self.own is False and (AHEAD in self.own_note or (m is not None and int(m.group(1)) >= REPLICATE))

    @property
    def small(self) -> bool:
        """Whether the effect is small (below ``EFFECTS``'s threshold in size)."""
        if self.effect is None or not np.isfinite(self.effect.estimate):
            return False
        _, _, sign, size = EFFECTS[self.key]
        if self.key == "specific":
            return self.effect.estimate < size
        return abs(self.effect.estimate) < size

    @property
    def word(self) -> str:
        """The verdict's status word (``STATUSES``): ``status``, and where it holds, whether a
        heuristic at the same channel counts (a simple rule) is as good or better."""
        if self.status != HOLDS or self.own is not False:
            return self.status
        return HOLDS_BETTER if self.outdone else HOLDS_AS_GOOD

    def sentence(self) -> str:
        """The verdict in words, written from the numbers."""
        what = EFFECTS[self.key][0]
        head = f"On {self.network}, *{self.name}*"
        if self.status == CANNOT:
            return f"{head}: {CANNOT} (the test cannot tell its alternatives apart on " \
                   f"{self.instances - self.holds_in} of {self.instances} instances)."
        effect = f"{what} {self.effect.text()}" if self.effect else ""
        if self.status == NOT_SHOWN and self.inconsistent:
            return f"{head}: {NOT_SHOWN} (instances are significant in opposite directions at " \
                   f"{', '.join(self.inconsistent)}; {effect})."
        if self.status == NEGLIGIBLE:
            return f"{head}: {NEGLIGIBLE} (significant on {self.holds_in} of {self.instances} instances, but " \
                   f"{effect} is below the smallest effect worth reporting, {EFFECTS[self.key][3]:g})."
        if self.status != "holds":
            return f"{head}: {NOT_SHOWN} (holds on {self.holds_in} of {self.instances} " \
                   f"instances; {effect})."
        where = f" at {', '.join(self.points)}" if self.points else ""
        size = "a small effect" if self.small else "effect"
        text = f"{head}: {self.word} ({self.holds_in} of {self.instances} instances){where}: {size} {effect}"
        if self.inconsistent:
            text += f"; inconsistent across instances at {', '.join(self.inconsistent)}"
        if self.near:
            at = ", ".join(x for x in self.near if x)
            text += f"; its test{' at ' + at if at else ''} lies within two Monte-Carlo standard " \
                    "errors of 0.05 on one instance or more, so other null draws could change it"
        if self.rival:
            text += f". The best heuristic at the same channel counts, {self.rival}, gives " \
                    f"{self.rival_effect.text()}"
            text += {True: "; the finding is NAD's own", False: "; the finding is not NAD's own",
                     None: f"; whether it is NAD's own {CANNOT}"}[self.own]
            text += f" ({self.own_note})" if self.own_note else ""
        return text + "."


def _per_instance(key: str, runs: list[dict[str, Finding]], points: list[int]) -> list[float]:
    """Each instance's effect of ``key``: at ``points`` (1-based) for the per-point findings
    (mean of the point statistic there), its estimate otherwise; scaled as ``EFFECTS`` says."""
    scale = EFFECTS[key][1]
    out = []
    for r in runs:
        f = r.get(key)
        if f is None:
            continue
        if key == "structure":
            n = len(f.values) - len(f.untestable)
            out.append(len(f.points) / n if n else np.nan)
        elif key in PER_POINT:
            v = [f.values[p - 1] for p in points if np.isfinite(f.values[p - 1])]
            out.append(scale * float(np.mean(v)) if v else np.nan)
        else:
            out.append(scale * f.estimate)
    return out


def _effect(key: str, runs: list[dict[str, Finding]], points: list[int]) -> Effect:
    """The network's effect of ``key``: over classes (each class's value averaged over instances;
    a bootstrap interval over classes clipped to the measure's ``RANGES``) for the class-unit
    findings, over instances (no interval) otherwise."""
    if key in CLASS_UNIT:
        per_class = np.nanmean([r[key].values for r in runs if key in r], 0)
        effect = Effect.over(EFFECTS[key][1] * per_class, "classes", RANGES[key])
    else:
        effect = Effect.over(_per_instance(key, runs, points), "instances")
    effect.signed = key not in UNSIGNED
    return effect


def _sized(key: str, v: NetworkVerdict) -> str:
    """The status once the effect is read: a finding that holds by its tests but whose interval
    (over classes) includes its null is "not shown"; one below the smallest effect worth reporting
    (``EFFECTS``) is "negligible"."""
    if v.status != HOLDS or v.effect is None or not np.isfinite(v.effect.estimate):
        return v.status
    if v.effect.excludes(NULLS.get(key, 0.0)) is False:
        return NOT_SHOWN
    return NEGLIGIBLE if v.small else HOLDS


def _effect_points(entry: dict, runs: list[dict[str, Finding]], key: str) -> list[int]:
    """Where a per-point effect is read: the points where it holds, else the last testable one."""
    if entry["points"]:
        return entry["points"]
    if key not in PER_POINT or not runs or key not in runs[0]:
        return []
    n = len(runs[0][key].values)
    testable = [p for p in range(1, n + 1) if p not in entry["untestable"]]
    return testable[-1:]


def _own(key: str, nad: list[dict[str, Finding]], rival: list[dict[str, Finding]], nad_fx: list[float],
         rival_fx: list[float], need: int) -> tuple[bool | None, str]:
    """Whether NAD beats the rival on ``key``: per class (one-sided Wilcoxon per instance) for the
    class-unit findings and for the hit rate where its per-class values were measured
    (``Finding.by_class``), by QAP on the similarity matrices for the Dif findings
    (``_own_on_pairs``), by swapping classes' sets for the overlap findings where measured
    (``Finding.nad_swap``); otherwise the count of instances, which three cannot make significant."""
    sign = EFFECTS[key][2]
    if key in PAIR_UNIT and all(r[key].matrix for r in [*nad, *rival]):
        return _own_on_pairs(key, nad, rival, need)
    if key in SET_UNIT and all(r[key].nad_swap_dist or r[key].nad_swap for r in rival) \
            and any(r[key].nad_swap_dist for r in rival):
        return _own_pooled([r[key].nad_swap_dist for r in rival])
    if key in SET_UNIT and all(r[key].nad_swap for r in rival):
        return _own_per_instance([r[key].nad_swap for r in rival], need, SAME_SETS,
                                 "swapping classes' sets")
    per_class = key in CLASS_UNIT or all(r[key].by_class for r in [*nad, *rival])
    if per_class:  # the hit rate: each class's own, where measured
        values = (lambda f: f.values) if key in CLASS_UNIT else (lambda f: f.by_class)  # noqa: E731
        ahead = behind = tested = 0
        for a, b in zip(nad, rival):
            x, y = np.asarray(values(a[key]), dtype=float), np.asarray(values(b[key]), dtype=float)
            d = sign * (x - y)
            d = d[np.isfinite(d)]
            d = np.where(np.abs(d) < 1e-6, 0.0, d)  # below float resolution: no difference
            if 2.0 ** -np.count_nonzero(d) >= ALPHA:  # the smallest p so few differing classes give
                continue
            tested += 1
            ahead += stats.wilcoxon(d, alternative="greater").pvalue < ALPHA
            behind += stats.wilcoxon(d, alternative="less").pvalue < ALPHA
        if tested < need:
            return None, f"{FEW} on {len(nad) - tested} of {len(nad)} instances"
        note = f"NAD ahead on {ahead}, behind on {behind} of {tested} instances, Wilcoxon over classes"
        return bool(ahead >= need and behind == 0), note
    pairs = [(a, b) for a, b in zip(nad_fx, rival_fx) if np.isfinite(a) and np.isfinite(b)]
    ahead = sum(sign * (a - b) > 0 for a, b in pairs)
    return None, f"NAD ahead on {ahead} of {len(pairs)} instances; {len(pairs)} instances cannot reach p < 0.05"


def _own_pooled(dists: list[list[float]]) -> tuple[bool | None, str]:
    """NAD's own on an overlap finding by ONE test over the instances (``stats.swap_pooled``: class
    swaps within each instance, the sum of the instances' differences): ahead where its p is below
    ALPHA; "cannot be tested here" where its smallest attainable p (ties of the statistic) is not;
    the heuristic significantly ahead is said."""
    t = swap_pooled([d for d in dists if d])
    if not np.isfinite(t["p_greater"]):
        return None, f"{SAME_SETS} on {len(dists)} of {len(dists)} instances"
    if t["p_floor"] >= ALPHA:
        return None, f"{FLOOR} ({t['p_floor']:.2g}; pooled class swaps over {t['instances']} instances)"
    note = (f"pooled class swaps over {t['instances']} instances: NAD ahead p = {t['p_greater']:.2g}, "
            f"behind p = {t['p_less']:.2g}")
    return bool(t["p_greater"] < ALPHA), note + ("; " + AHEAD if t["p_less"] < ALPHA else "")


def _own_on_pairs(key: str, nad: list[dict[str, Finding]], rival: list[dict[str, Finding]],
                  need: int) -> tuple[bool | None, str]:
    """Whether NAD's similarities track the misjudgments more than the rival's, per instance: QAP
    on NAD's class x class similarity minus the rival's (``stats.dif_ahead``; the class is the
    unit, a pair moves as one). At NAD's channel counts the chance part of the two matrices is the
    same, so the raw and the beyond-chance Dif get the same test. An instance where the two
    matrices do not differ is not tested."""
    tests = []
    for a, b in zip(nad, rival):
        t = dif_ahead(a[key].matrix, b[key].matrix, np.asarray(a[key].misjudged_as, dtype=bool))
        tests.append([t["p_greater"], t["p_less"], t["p_floor"], t.get("p_floor_less", t["p_floor"])])
    return _own_per_instance(tests, need, SAME, "QAP over classes")


def _own_per_instance(tests: list[list[float]], need: int, same: str, how: str) -> tuple[bool | None, str]:
    """NAD's own from one test per instance ([p ahead, p behind, smallest p]): ahead on ``need``
    instances and behind on none. An instance whose test cannot reach ALPHA (nothing differs, or
    too few classes: 3 give 3! = 6 orders) is not tested; too few tested is "not testable"."""
    ahead = behind = tested = 0
    for p_greater, p_less, p_floor, *rest in tests:
        p_floor_less = rest[0] if rest else p_floor  # the smallest p each side can give
        if not np.isfinite(p_greater) or min(p_floor, p_floor_less) >= ALPHA:
            continue
        tested += 1
        ahead += p_greater < ALPHA
        behind += p_less < ALPHA
    if tested < need:
        return None, f"{same} on {len(tests) - tested} of {len(tests)} instances"
    note = f"NAD ahead on {ahead}, behind on {behind} of {tested} instances, {how}"
    return bool(ahead >= need and behind == 0), note


def network_verdicts(network: str, points: list[str], nad: list[dict[str, Finding]],
                     rivals: dict[str, list[dict[str, Finding]]] | None = None,
                     need: int = REPLICATE) -> dict[str, NetworkVerdict]:
    """The verdict on every finding for one network: ``nad`` has the findings of each trained
    instance, ``rivals`` the same for each heuristic at NAD's channel counts (same instances)."""
    rivals = rivals or {}
    reps = replicated(nad, need)
    out = {}
    for key, entry in reps.items():
        at = _effect_points(entry, nad, key)
        fx = _per_instance(key, nad, at)
        v = NetworkVerdict(network, key, entry["status"], entry["holds_in"], entry["instances"],
                           [points[p - 1] for p in entry["points"]],
                           [points[p - 1] for p in entry["inconsistent"]],
                           [points[p - 1] for p in entry["untestable"]], _effect(key, nad, at),
                           near=["" if p == 0 else points[p - 1] for p in entry["near"]])
        v.status = _sized(key, v)
        scored = {m: _per_instance(key, runs, at) for m, runs in rivals.items()
                  if all(key in r for r in runs)}
        if scored:
            sign = EFFECTS[key][2]
            best = max(scored, key=lambda m: sign * np.nanmean(scored[m]) if np.any(np.isfinite(scored[m]))
                       else -np.inf)
            v.rival, v.rival_effect = best, _effect(key, rivals[best], at)
            owns = {m: _own(key, nad, rivals[m], fx, scored[m], need) for m in scored}
            lost = [m for m, (o, _) in owns.items() if o is not None and not o]
            if lost:  # NAD's own needs every heuristic beaten: one that is not, tested, settles it
                m = best if best in lost else lost[0]
                v.own, v.own_note = False, owns[m][1] + f" against {m}"
            else:  # NAD's own when every heuristic is beaten; the note names one left untested
                undecided = [m for m, (o, _) in owns.items() if o is None]
                m = best if not undecided or best in undecided else undecided[0]
                v.own, v.own_note = (None if undecided else True), owns[m][1] + f" against {m}"
        if v.status != HOLDS:  # better than every rule at what? only a finding that holds is compared
            v.own = None
        out[key] = v
    return out


def answer(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str]) -> str:
    """The book's answer in three sentences, from every network's verdicts on ``keys``: what
    holds and on how many networks, how large it is, and whether it is NAD's own."""
    networks = list(verdicts)
    n = len(networks)
    held = {k: [a for a in networks if k in verdicts[a] and verdicts[a][k].status == "holds"] for k in keys}
    holds = [k for k in keys if len(held[k]) * 2 >= n and held[k]]
    rest = [k for k in keys if k not in holds]
    first = (f"Of the findings tested, {_list([f'*{NAMES[k]}* ({len(held[k])} of {n})' for k in holds])} "
             f"hold on at least half of the {n} networks" if holds
             else f"None of the findings tested holds on half of the {n} networks")
    first += (f"; {_list([f'*{NAMES[k]}*' for k in rest])} do not" if rest and holds else "") + "."
    sizes = []
    for k in holds:
        fx = [verdicts[a][k].effect.estimate for a in held[k] if verdicts[a][k].effect]
        small = sum(verdicts[a][k].small for a in held[k])
        label = EFFECTS[k][0]
        signed = k not in UNSIGNED
        sizes.append(f"{label} {sig(min(fx), signed=signed)} to {sig(max(fx), signed=signed)}"
                     + (f" (small on {small} of {len(held[k])})" if small else ""))
    second = ("Where they hold, the effects are " + "; ".join(sizes) + ".") if sizes else \
        "No effect is large enough to report."
    own = [(a, k) for k in keys for a in networks
           if k in verdicts[a] and verdicts[a][k].own and verdicts[a][k].status == "holds"]
    few = sum(verdicts[a][k].own is None and verdicts[a][k].status == "holds"
              and verdicts[a][k].own_note.startswith(FEW) for k in keys for a in networks if k in verdicts[a])
    same = sum(verdicts[a][k].own is None and verdicts[a][k].status == "holds"
               and verdicts[a][k].own_note.startswith((SAME, SAME_SETS)) for k in keys for a in networks
               if k in verdicts[a])
    untested = sum(verdicts[a][k].own is None and verdicts[a][k].status == "holds"
                   for k in keys for a in networks if k in verdicts[a]) - few - same
    beaten = sum(verdicts[a][k].own is False and verdicts[a][k].status == "holds"
                 for k in keys for a in networks if k in verdicts[a])
    behind = sum(verdicts[a][k].own is None and verdicts[a][k].status == "holds"
                 and verdicts[a][k].own_note.startswith("NAD ahead on 0 ")
                 for k in keys for a in networks if k in verdicts[a])
    third = (f"NAD's own (its effect beats every heuristic at the same channel counts): "
             f"{_list([f'*{NAMES[k]}* on {a}' for a, k in own])}" if own else
             "On no finding is NAD shown to beat the best heuristic at the same channel counts")
    outdone = sum(verdicts[a][k].outdone and verdicts[a][k].status == "holds"
                  for k in keys for a in networks if k in verdicts[a])
    third += f"; on {beaten} network-finding cells a heuristic does as well or better" if beaten else ""
    third += f" (significantly better on {outdone})" if outdone else ""
    third += (f"; on {untested} the comparison is not testable with three instances (on {behind} of them "
              f"the heuristic's effect is the larger on every instance)") if untested else ""
    third += f"; on {few} fewer than 5 classes differ from the heuristic, too few to test" if few else ""
    third += (f"; on {same} the similarities or overlaps NAD is compared on do not differ from the heuristic's, "
              "nothing to test") if same else ""
    return " ".join([first, second, third + "."])


def finds(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str]) -> str:
    """A chapter's "What this chapter finds": one bullet per finding of ``keys``, over the networks
    of ``verdicts``, written from the numbers: where it holds (with its effect and interval, small
    effects called small), where not, where it is not testable or inconsistent, and whether it is
    NAD's own against the best heuristic at the same channel counts."""
    lines = []
    for key in keys:
        have = {a: v[key] for a, v in verdicts.items() if key in v}
        if not have:
            continue
        by_status: dict[str, list[str]] = {}
        for a, v in have.items():
            if v.status == "holds":
                at = f" at {_span(v.points)}" if v.points else ""
                size = "small, " if v.small else ""
                by_status.setdefault(v.word, []).append(
                    f"{a} ({size}{EFFECTS[key][0]} {v.effect.text() if v.effect else 'n/a'}{at})")
            elif v.status == NOT_SHOWN and v.inconsistent:
                by_status.setdefault(v.status, []).append(f"{a} (opposite ways at {_span(v.inconsistent)})")
            else:
                by_status.setdefault(v.status, []).append(a)
        parts = [f"{status} on {_list(nets)}" for status, nets in sorted(
            by_status.items(), key=lambda kv: list(STATUSES).index(kv[0]))]
        held = [v for v in have.values() if v.status == "holds" and v.rival]
        if held:
            own = [v.network for v in held if v.own]
            not_own = [v.network for v in held if v.own is False]
            few = [v.network for v in held if v.own is None and v.own_note.startswith(FEW)]
            alike = SAME_SETS if key in SET_UNIT else SAME
            same = [v.network for v in held if v.own is None and v.own_note.startswith(alike)]
            untested = [v.network for v in held if v.own is None and v.network not in few + same]
            words = [f"NAD's own on {_list(own)}"] if own else \
                ["NAD's own on no network where that can be tested"] if not_own else []
            better = [v.network for v in held if v.outdone]
            if not_own:
                words.append(f"a heuristic at the same counts does as well on {_list(not_own)}"
                             + (f" (significantly better on {_list(better)})" if better else ""))
            if few:
                words.append(f"whether it is NAD's own is not testable on {_list(few)}: fewer than 5 classes differ "
                             "from the best heuristic")
            if same:
                words.append(f"whether it is NAD's own is not testable on {_list(same)}: "
                             f"{alike.replace('the rival', 'the best heuristic')}")
            if untested:
                larger = [v.network for v in held if v.own is None and v.own_note.startswith("NAD ahead on 0 ")]
                words.append(f"whether it is NAD's own is not testable with {held[0].instances} instances on "
                             f"{_list(untested)}"
                             + (f" (the best heuristic's effect is the larger on every instance on "
                                f"{_list(larger)})" if larger else ""))
            parts.append("; ".join(words))
        near = [v.network for v in have.values() if v.near]
        if near:
            parts.append(f"a decision within two Monte-Carlo standard errors of 0.05 on {_list(near)}")
        lines.append(f"- *{NAMES[key]}*: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _span(points: list[str]) -> str:
    return ", ".join(points) if len(points) <= 3 else f"{len(points)} points, {points[0]} to {points[-1]}"


def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _where(v: NetworkVerdict) -> str:
    if v.status == NOT_SHOWN and v.inconsistent:
        return "opposite ways at " + ", ".join(v.inconsistent)
    return _span(v.points) if v.points else ""


def _own_cell(v: NetworkVerdict) -> str:
    if v.status != "holds":
        return ""
    if v.own is None:
        return f"{CANNOT} (" + v.own_note.split(";")[0].replace("NAD ", "") + ")"
    return "yes" if v.own else "no (a heuristic significantly better)" if v.outdone else "no"


def table(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str]) -> str:
    """The verdicts of ``keys`` on every network as one markdown table: verdict and instances,
    where, effect with its interval, the best heuristic at the same counts, and NAD's own; a
    decision within two Monte-Carlo errors of 0.05 is marked (†)."""
    rows = []
    for key in keys:
        first = True
        for a, found in verdicts.items():
            v = found.get(key)
            if v is None:
                continue
            rival = f"{v.rival}: {v.rival_effect.text()}" if v.rival else ""
            where = _where(v)
            rows.append(f"| {NAMES[key] if first else ''} | {a} | {v.word} ({v.holds_in}/{v.instances})"
                        f"{'; ' + where if where else ''}{' (†)' if v.near else ''} | "
                        f"{v.effect.text() if v.effect else ''} | {rival} | {_own_cell(v)} |")
            first = False
    head = ("| finding | network | verdict (instances); where | effect "
            "| best heuristic, same counts | NAD's own |\n|" + " --- |" * 6)
    return "\n".join([head, *rows])


def power_table(rows: list[dict] | None = None, **kwargs) -> str:
    """A test's power against a planted alternative (rows of ``stats.pooled_power`` or
    ``uneven_power``, computed with ``kwargs`` when not given) as a markdown table: planted core
    -> rejection rate at ALPHA (at 0 the test's level)."""
    from nadkit.stats import pooled_power

    rows = rows if rows is not None else pooled_power(**kwargs)
    diff = all("difference per instance" in r for r in rows)
    lines = ["| planted core (channels, share of a set) |" + (" difference per instance |" if diff else "")
             + " rejection rate |", "| --- |" + (" --- |" if diff else "") + " --- |"]
    for r in rows:
        lines.append(f"| {r['planted core']} ({r['share of set']:.2f}) |"
                     + (f" {sig(r['difference per instance'])} |" if diff else "")
                     + f" {r['rejection rate']:.2f} ({r['replicates']} replicates) |")
    return "\n".join(lines)


# --- the first screen: the answer in four sentences and the verdict grid -------------------------
# Each finding in a few plain words (the grid's rows, the answer's lists).
SHORT = {
    "accuracy": "keep their class", "specific": "specific to their class", "more": "classes share more",
    "fewer": "classes share fewer", "structure": "sharing uneven", "hit": "hit rate on mosaics",
    "misjudged": "misjudged pairs similar", "misjudged beyond chance": "misjudged, beyond chance",
    "top confusion": "top confusion similar"}
# Where each finding is measured: the grid's cells link there.
CHAPTER = {"accuracy": "05_whether", "specific": "05_whether", "more": "06_where", "fewer": "06_where",
           "structure": "06_where", "hit": "06_where", "misjudged": "07_misjudgment",
           "misjudged beyond chance": "07_misjudgment", "top confusion": "07_misjudgment"}
# The grid's categories, best first: (background, text colour, legend).
CATEGORIES = {
    "better": ("#1b7837", "#ffffff", "holds, NAD better than every simple rule"),
    "untested": ("#c7e9c0", "#000000", "holds; against the simple rules " + CANNOT),
    "as good": ("#d9f0d3", "#000000", HOLDS_AS_GOOD),
    "rule better": ("#fdb863", "#000000", HOLDS_BETTER),
    "no": ("#e0e0e0", "#000000", f"{NEGLIGIBLE} or {NOT_SHOWN}"),
    "cannot": ("#ffffff", "#555555", CANNOT),
}


def category(v: NetworkVerdict) -> str:
    """The grid's category of one verdict (``CATEGORIES``)."""
    if v.status == CANNOT:
        return "cannot"
    if v.status != HOLDS:
        return "no"
    if v.own is None:
        return "untested"
    return "better" if v.own else "rule better" if v.outdone else "as good"


def grid(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str]) -> str:
    """The verdict grid as HTML: findings by networks, each cell coloured by its category, with
    the effect in the cell (in the finding's unit), its full verdict on hover, and a link to the
    chapter that measures it; the legend below."""
    from html import escape

    nets = list(verdicts)
    pad = "padding:2px 4px"
    head = (f'<tr><th style="{pad}">finding</th>'
            + "".join(f'<th style="{pad};overflow-wrap:anywhere">{escape(a)}</th>' for a in nets) + "</tr>")
    rows = []
    for key in keys:
        cells = []
        for a in nets:
            v = verdicts[a].get(key)
            if v is None:
                cells.append("<td></td>")
                continue
            bg, fg, label = CATEGORIES[category(v)]
            fx = v.effect.estimate if v.effect is not None else float("nan")
            text = sig(fx, signed=key not in UNSIGNED) if np.isfinite(fx) else "&ndash;"
            cells.append(f'<td style="background:{bg};text-align:center;{pad}"><a style="color:{fg}" '
                         f'href="{CHAPTER[key]}.html" title="{escape(label + ": " + v.sentence())}">{text}</a></td>')
        rows.append(f'<tr><td style="{pad}">{escape(SHORT[key])}</td>{"".join(cells)}</tr>')
    legend = " ".join(f'<span style="background:{bg};color:{fg};border:1px solid #999;padding:0 4px;'
                      f'white-space:nowrap">{escape(label)}</span>' for bg, fg, label in CATEGORIES.values())
    units = "; ".join(f"{SHORT[k]}: {EFFECTS[k][0]}" for k in keys)
    return (f'<div style="overflow-x:auto"><table class="verdict-grid" style="font-size:0.8em;'
            f'border-collapse:collapse">{head}{"".join(rows)}</table></div>\n<p style="font-size:0.8em;line-height:1.9">{legend}</p>\n'
            f'<p style="font-size:0.75em">In each cell the effect ({escape(units)}).</p>')


def lead(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str], contrast: str = "") -> str:
    """The book's answer in four sentences, from the verdicts through a fixed template that a
    reader of the paper can follow: what reproduces; what a simple rule at the same channel
    counts does; whether the sub-architectures are specific to their class (and ``contrast``, a
    clause on the objective that sees other classes); what was not run."""
    nets = list(verdicts)
    n = len(nets)
    held = [verdicts[a][k] for k in keys for a in nets if k in verdicts[a] and verdicts[a][k].status == HOLDS]
    most = [k for k in keys if 2 * sum(v.key == k for v in held) >= n and any(v.key == k for v in held)]
    first = (f"On {n} small networks of the paper's designs, each trained three times on Fashion-MNIST, "
             f"{len(most)} of the paper's {len(keys)} findings hold on at least half of them"
             + (f" ({_list([SHORT[k] for k in most])})" if most else "") + ".")
    cats = [category(v) for v in held]
    untested = cats.count("untested")
    second = (f"Where one holds ({len(held)} cases), a simple rule keeping as many channels (the most active, "
              f"say) is as good in {cats.count('as good')} and better in {cats.count('rule better')}; NAD beats "
              f"every such rule in {cats.count('better')}" + (f" ({untested} cannot be tested)" if untested else "")
              + ".")
    spec = [a for a in nets if "specific" in verdicts[a] and verdicts[a]["specific"].status == HOLDS]
    third = (f"With the authors' objective the sub-architectures are specific to their class on {len(spec)} of {n} "
             "networks" + ("" if len(spec) == n else ", elsewhere naming their class for most other images")
             + (f"; {contrast}" if contrast else "") + ".")
    return " ".join([first, second, third, "Not run here: the paper's ImageNet and Places365 networks."])


def bullets(verdicts: dict[str, dict[str, NetworkVerdict]], keys: list[str], most: int = 5,
            named: int = 4) -> str:
    """A chapter's closing bullets: one per category of the grid that has cells, best first (the
    last ones merged to keep at most ``most``), each with its count and its first ``named``
    finding-network cells (the grid shows them all)."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        for a, found in verdicts.items():
            if key in found:
                groups.setdefault(category(found[key]), []).append(f"{SHORT[key]} on {a}")
    items = [(CATEGORIES[c][2], cells) for c, cells in ((c, groups.get(c)) for c in CATEGORIES) if cells]
    while len(items) > most:
        (a, x), (b, y) = items[-2], items[-1]
        items[-2:] = [(f"{a}; {b}", x + y)]
    return "\n".join(f"- *{label}* ({len(cells)}): {'; '.join(cells[:named])}"
                     + (f"; {len(cells) - named} more in the grid" if len(cells) > named else "") + "."
                     for label, cells in items)
