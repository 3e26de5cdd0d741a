"""The confirmation's error rates, shown, not assumed: a simulation of its decisions under known truths.

Each replicate draws per-seed test accuracies for two arms, paired (a seed's luck shared by both arms, the
per-seed difference normal with a known mean ``effect`` and spread ``sd``), and runs the protocol's own decision
code on them look after look, stopping at the first look that decides, as the protocol does: the paired tests
of :func:`bench.decide.paired_tests` (what :func:`bench.decide.test_pair` computes for a paired design, here for
every replicate at once) and the decision of :func:`bench.decide.decide` at each look's levels, the functions
:func:`bench.protocol.run.decide_pairs` runs (one pair, so Holm's correction is the identity). Every design
is run on the same draws:

- ``bonferroni``: 5 % / looks at every look (what the protocol did before);
- ``obrien_fleming`` and ``pocock``: Lan-DeMets alpha spending (bench/protocol/spending.py);
- ``fixed``: one look, at max_seeds (no early stopping).

Three truths, the rates the issue asks for:

- no difference: the rate of wrong "better" decisions (type I error, the stopping included);
- a difference of twice the margin: the rate of wrong "equivalent" decisions;
- the measured effect: the power (right "better" decisions) and the expected seeds per arm.

``python -m bench.protocol.simulate --effect 5 --sd 5.4 --margin 1 --reps 20000`` prints the table (points of
accuracy; README "A fair comparison" shows it); a protocol runs a smaller one at its own measured effect and
spread when it ends (``protocol.simulation_reps``), for its report.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.decide import ALPHA, Decision, decide, paired_tests
from bench.protocol.options import SPENDING_NAMES
from bench.protocol.spending import Design, design

METRIC = (
    "test_accuracy"  # the protocol's (bench/protocol/run.py); the decision code reads it for its direction
)
BASELINE, BASELINE_SD = (
    0.5,
    0.05,
)  # arm B's accuracy by seed: any value; paired tests see only the differences
DEFAULT_REPS = 20_000
DESIGNS = ("bonferroni", "obrien_fleming", "pocock", "fixed")  # today's design first


@dataclass(frozen=True)
class Truth:
    name: str
    effect: float  # the true mean of A - B per seed
    question: str  # the rate this truth is for


def truths(effect: float, margin: float) -> list[Truth]:
    return [
        Truth("no difference", 0.0, "wrong better"),
        Truth("twice the margin", 2 * margin, "wrong equivalent"),
        Truth("measured effect", effect, "power"),
    ]


def _outcomes(
    designs: Sequence[Design], differences: np.ndarray, margin: float, baseline: np.ndarray
) -> dict[str, tuple[list[str], list[int]]]:
    """Each design's decision ("better:a", "better:b", "equivalent" or "undecided") and the seeds it used, for
    each replicate (a row of ``differences``: per-seed A - B; of ``baseline``: B's accuracies)."""
    seeds = designs[0].seeds
    a_all, b_all = baseline + differences, baseline
    # The statistics of every look, for every replicate at once (the same function test_pair calls).
    looks = [paired_tests(a_all[:, :n], b_all[:, :n], margin) for n in seeds]
    means = [differences[:, :n].mean(axis=1) for n in seeds]
    outcomes: dict[str, tuple[list[str], list[int]]] = {}
    for plan in designs:
        labels, used = [], []
        for r in range(len(differences)):
            for k, n in enumerate(seeds):
                last = k == len(seeds) - 1
                if plan.alpha[k] == 0 and plan.tost_alpha[k] == 0 and not last:
                    continue  # a look this design does not take
                stats_k = {key: float(values[r]) for key, values in looks[k].items()}
                row = {"metric": METRIC, "margin": margin, "test": "paired t", "arm_a": "a", "arm_b": "b",
                       "diff": float(means[k][r]), "p_holm": stats_k["p_value"], "tost_p_holm": stats_k["tost_p"],
                       **stats_k}  # fmt: skip
                verdict = decide(row, 1, plan.alpha[k], plan.tost_alpha[k], estimate=False)
                word = verdict["decision"]
                if word in (Decision.BETTER, Decision.EQUIVALENT) or last:
                    labels.append(f"better:{verdict['better']}" if word == Decision.BETTER else str(word))
                    used.append(n)
                    break
        outcomes[plan.spending] = (labels, used)
    return outcomes


def simulate(
    margin: float,
    effect: float,
    sd: float,
    max_seeds: int,
    seeds_per_round: int,
    reps: int,
    seed: int = 0,
    spendings: Sequence[str] = DESIGNS,
) -> pd.DataFrame:
    """One row per truth x design: the rates of each decision, the rate the truth is for, its standard error,
    and the expected seeds per arm (accuracies as fractions: ``margin=0.01`` is one point)."""
    designs = [design(name, max_seeds, seeds_per_round) for name in spendings]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((reps, max_seeds))  # the same draws for every truth and design
    baseline = rng.normal(BASELINE, BASELINE_SD, (reps, max_seeds))
    rows = []
    for truth in truths(effect, margin):
        outcomes = _outcomes(designs, truth.effect + sd * noise, margin, baseline)
        for name, (labels, used) in outcomes.items():
            labels_ = pd.Series(labels)
            right = "better:a" if truth.effect > 0 else None
            better = labels_.str.startswith("better").mean()
            rate = {
                "wrong better": better if truth.effect == 0 else (labels_ == "better:b").mean(),
                "wrong equivalent": (labels_ == "equivalent").mean(),
                "power": (labels_ == right).mean() if right else math.nan,
            }[truth.question]
            decided = (labels_ != "undecided").mean()
            rows.append({
                "truth": truth.name, "effect": truth.effect, "sd": sd, "margin": margin, "design": name,
                "question": truth.question, "rate": rate, "rate_se": math.sqrt(rate * (1 - rate) / reps),
                "better": better, "equivalent": (labels_ == "equivalent").mean(), "undecided": 1 - decided,
                "expected_seeds": float(np.mean(used)),
                "seeds_per_decision": float(np.mean(used)) / decided if decided else math.inf,
                "reps": reps, "max_seeds": max_seeds, "seeds_per_round": seeds_per_round,
            })  # fmt: skip
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per design: the three rates the issue asks for and the expected seeds at the measured effect."""
    rows = []
    for name, group in table.groupby("design", sort=False):
        by = group.set_index("truth")
        rows.append({
            "design": name,
            "wrong_better": by.loc["no difference", "rate"],
            "wrong_better_se": by.loc["no difference", "rate_se"],
            "expected_seeds_null": by.loc["no difference", "expected_seeds"],
            "wrong_equivalent": by.loc["twice the margin", "rate"],
            "power": by.loc["measured effect", "rate"],
            "power_se": by.loc["measured effect", "rate_se"],
            "expected_seeds": by.loc["measured effect", "expected_seeds"],
            "seeds_per_decision": by.loc["measured effect", "seeds_per_decision"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def markdown(summary_table: pd.DataFrame) -> str:
    """The summary as README's table (rates in percent with their standard error)."""
    header = (
        "| design | wrong *better*, no difference | wrong *equivalent*, 2 × margin | power, measured effect "
        "| expected seeds per arm (no difference / measured effect) | seeds per decision |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    lines = [header]
    for row in summary_table.to_dict("records"):
        lines.append(
            f"| {SPENDING_NAMES[row['design']]} | {100 * row['wrong_better']:.2f} % ± "
            f"{100 * row['wrong_better_se']:.2f} | {100 * row['wrong_equivalent']:.2f} % | "
            f"{100 * row['power']:.1f} % ± {100 * row['power_se']:.1f} | {row['expected_seeds_null']:.2f} / "
            f"{row['expected_seeds']:.2f} | {row['seeds_per_decision']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.protocol.simulate",
        description="Error rates of the fair comparison's confirmation designs, by simulation (points of accuracy).",
    )
    parser.add_argument("--effect", type=float, default=5.0, help="true mean difference A - B, points (5)")
    parser.add_argument("--sd", type=float, default=5.4, help="sd of the per-seed difference, points (5.4)")
    parser.add_argument(
        "--margin", type=float, default=1.0, help="equivalence margin, points (report.margin)"
    )
    parser.add_argument("--max-seeds", type=int, default=9, help="protocol.max_seeds (9)")
    parser.add_argument("--seeds-per-round", type=int, default=3, help="protocol.seeds_per_round (3)")
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS, help=f"replicates ({DEFAULT_REPS})")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's random seed (0)")
    args = parser.parse_args(argv)
    table = simulate(
        args.margin / 100, args.effect / 100, args.sd / 100, args.max_seeds, args.seeds_per_round, args.reps,
        args.seed,
    )  # fmt: skip
    print(
        f"{args.reps} replicates; looks at {list(design('fixed', args.max_seeds, args.seeds_per_round).seeds)} "
        f"seeds; effect {args.effect:g} points, sd {args.sd:g} points per seed pair, margin ±{args.margin:g}, "
        f"level {ALPHA:.0%} (± one standard error)\n"
    )
    print(markdown(summary(table)))


if __name__ == "__main__":
    main()
