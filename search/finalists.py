"""Two-stage search: the architectures a one-shot study finds most likely on its front,
re-evaluated stand-alone (trained from the parent with seed repeats) in a second study.

One-shot scores rank architectures roughly and are weakest among the good ones, so their front
is a shortlist, not a result. The second study (`<study>-finalists`, same storage) holds the
plain backbone (the baseline of every verdict) and the `count` finalists, chosen by their
probability of being on the one-shot front; both studies name each other (`finalists_study`,
`stage_one_study`), and the second's report shows how the ranking changed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import optuna
import pandas as pd
from scipy.stats import kendalltau

from attnas.search.analysis import view

log = logging.getLogger("attnas.search")


@dataclass
class FinalistsConfig:
    count: int = 0  # 0: no second stage
    evaluator: str = "proxy"  # the conf/evaluator option that evaluates them stand-alone
    repeats: int = 3  # seeds per finalist


def shortlist(study: optuna.Study, count: int) -> pd.DataFrame:
    """The `count` feasible architectures most likely on the front (ties: the better first objective)."""
    v = view(study)
    table = v.architectures[v.architectures["feasible"] & (v.architectures["num_blocks"] > 0)]
    ascending = v.directions[0] == "minimize"
    return table.sort_values(["p_front", v.objectives[0]], ascending=[False, ascending]).head(count)


def finalists_config(cfg, evaluator_cfg, count: int, repeats: int):
    """The second study's config: the stand-alone evaluator, the finalists and the plain backbone only."""
    evaluator_cfg = dataclasses.replace(evaluator_cfg, repeats=repeats, reference_repeats=repeats)
    return dataclasses.replace(cfg, evaluator=evaluator_cfg, study_name=f"{cfg.study_name}-finalists", n_trials=count + 1,
                               enqueue_references=False, finalists=FinalistsConfig())


def enqueue_finalists(stage_one: optuna.Study, second: optuna.Study, space, finalists: pd.DataFrame) -> None:
    from attnas.space import ArchSpec

    second.set_user_attr("stage_one_study", stage_one.study_name)
    stage_one.set_user_attr("finalists_study", second.study_name)
    held = {t.user_attrs.get("spec") or t.user_attrs.get("finalist_spec") for t in second.trials}
    plain = ArchSpec.parse(space.backbone)
    if str(plain) not in held:
        second.enqueue_trial(space.params_for(plain), user_attrs={"reference": True, "reference_spec": str(plain)})
    for rank, row in enumerate(finalists.itertuples(), start=1):
        if row.spec not in held:
            second.enqueue_trial(space.params_for(ArchSpec.parse(row.spec)),
                                 user_attrs={"finalist_spec": row.spec, "stage_one_rank": rank,
                                             "stage_one_p_front": float(row.p_front)})


def stage_comparison(study: optuna.Study) -> tuple[pd.DataFrame, float] | None:
    """For a finalists study: each finalist's one-shot and stand-alone values of the first
    objective, their ranks, and Kendall's tau between the two rankings."""
    name = study.user_attrs.get("stage_one_study")
    if name is None:
        return None
    first = optuna.load_study(study_name=name, storage=study._storage)
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


def second_stage(stage_one: optuna.Study, cfg, evaluator_cfg, cache_path: str | None = None,
                 workdir: str | None = None) -> optuna.Study:
    """Run the finalists study of `stage_one` with `evaluator_cfg` (Python API and attnas-search)."""
    from attnas.search.study import prepare, search, setup

    second_cfg = finalists_config(cfg, evaluator_cfg, cfg.finalists.count, cfg.finalists.repeats)
    prepared = setup(second_cfg, cache_path, workdir)
    chosen = shortlist(stage_one, cfg.finalists.count)
    log.info("second stage: %d finalists of %s, evaluated with %s and %d seeds each, in study %s", len(chosen),
             stage_one.study_name, evaluator_cfg.name, cfg.finalists.repeats, prepared.study.study_name)
    enqueue_finalists(stage_one, prepared.study, prepared.space, chosen)
    prepare(prepared)
    return search(prepared, second_cfg)
