"""Multi-fidelity search for a multi-objective study: MO-ASHA's promotion rule.

Optuna cannot prune multi-objective trials (`Trial.report` raises), so the rungs live inside the
objective. A trial is first trained with a small fraction of the budget (rung 0, e.g. 1/9),
then, if promoted, a larger one (1/3), and only then the full budget. After each rung but the
last, the trial's objective values at that rung are ranked against every trial that reached
the same rung so far (finished, pruned or running, any worker): non-dominated sorting first,
the first objective within a front. The trial is promoted when its position is in the best
1/eta of them (at least the best one: the first trial at a rung is promoted), as in
asynchronous successive halving; otherwise it is pruned, with its rung metrics recorded.
References (the baseline of every verdict) are never pruned.

Each rung is a training of its own (no checkpoint is continued): the learning-rate schedule of
a short rung is complete, so its ranking is as fair as its budget allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import optuna
from attnas.search.pareto import pareto_ranks
from optuna.trial import TrialState


@dataclass
class MultiFidelityConfig:
    enabled: bool = False
    rungs: list[float] = field(default_factory=lambda: [1 / 9, 1 / 3, 1.0])  # fractions of the budget, the last 1
    eta: int = 3  # promote the best 1/eta of each rung


def rung_key(rung: int) -> str:
    return f"rung{rung}"


def promoted(study: optuna.Study, number: int, rung: int, values: list[float], eta: int) -> tuple[bool, int, int]:
    """(promote?, this trial's position, trials at the rung) by MO-ASHA's rule."""
    others = [(t.number, t.user_attrs[rung_key(rung)]["values"]) for t in study.get_trials(deepcopy=False)
              if t.number != number and rung_key(rung) in t.user_attrs
              and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)]
    numbers = [n for n, _ in others] + [number]
    points = np.array([v for _, v in others] + [values], dtype=float)
    directions = [d.name.lower() for d in study.directions]
    ranks = pareto_ranks(points, directions)
    first = points[:, 0] * (-1 if directions[0] == "maximize" else 1)
    order = np.lexsort((numbers, first, ranks))  # front, then the first objective, then who came first
    position = int(np.nonzero(order == len(points) - 1)[0][0])
    return position < max(1, len(points) // eta), position, len(points)
