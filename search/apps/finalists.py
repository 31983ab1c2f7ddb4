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


import optuna



from attnas.search.analysis.stages import shortlist
from attnas.search.config import FinalistsConfig

log = logging.getLogger("attnas.search")


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
