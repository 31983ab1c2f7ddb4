"""Two-stage searches, read back: the shortlist a (one-shot) study hands to its second stage, and
how the second stage's stand-alone ranking compares with the first's."""

from __future__ import annotations

import optuna
import pandas as pd
from scipy.stats import kendalltau

from attnas.search.analysis.view import view
from attnas.search.storage import storage_of


def shortlist(study: optuna.Study, count: int) -> pd.DataFrame:
    """The `count` feasible architectures most likely on the front (ties: the better first objective)."""
    v = view(study)
    table = v.architectures[v.architectures["feasible"] & (v.architectures["num_blocks"] > 0)]
    ascending = v.directions[0] == "minimize"
    return table.sort_values(["p_front", v.objectives[0]], ascending=[False, ascending]).head(count)


def stage_comparison(study: optuna.Study) -> tuple[pd.DataFrame, float] | None:
    """For a finalists study: each finalist's one-shot and stand-alone values of the first
    objective, their ranks, and Kendall's tau between the two rankings."""
    name = study.user_attrs.get("stage_one_study")
    if name is None:
        return None
    first = optuna.load_study(study_name=name, storage=storage_of(study))
    one, two = view(first).architectures.set_index("spec"), view(study).architectures.set_index("spec")
    objective = view(study).objectives[0]
    shared = [s for s in two.index if s in one.index]
    frame = pd.DataFrame({"spec": shared, "one_shot": [one.loc[s, objective] for s in shared],
                          "stand_alone": [two.loc[s, objective] for s in shared],
                          "stand_alone_se": [two.loc[s, f"{objective}_se"] for s in shared]})
    frame["one_shot_rank"] = frame["one_shot"].rank(ascending=False).astype(int)
    frame["stand_alone_rank"] = frame["stand_alone"].rank(ascending=False).astype(int)
    tau = kendalltau(frame["one_shot"], frame["stand_alone"]).statistic if len(frame) > 1 else float("nan")
    return frame.sort_values("stand_alone_rank"), float(tau)
