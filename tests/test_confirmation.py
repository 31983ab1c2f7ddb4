"""Confirmation on fresh seeds, the export's refusals, and racing: a search's winner is retrained
under seeds the study never used and judged on those runs alone; export refuses (exit 3, one
line) what did not survive; undecided architectures get more seeds before new ones."""

import logging
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from hydra import compose, initialize_config_module

from attnas.search.analysis.export import UnconfirmedError, export_spec
from attnas.search.analysis.report import write_report
from attnas.search.apps import export_app
from attnas.search.apps.config import register_configs
from attnas.search.apps.confirm import confirm
from attnas.search.apps.validate import typed
from attnas.search.noise import noise_floors
from attnas.search.racing import next_race, schedule_race
from attnas.search.study import run_search
from attnas.space import ArchSpec, SearchSpace
from tests.test_analysis import HAND, make_study

SE, ECA, CNL = "resnet50:layer3.5=se", "resnet50:layer4.0=eca", "resnet50:layer3.5=cnl"


class PlantedEvaluator:
    """Training replaced by the truth: each spec's true mAP, a seed effect shared by every spec and
    a small residual; counts what it trains."""

    def __init__(self, truth: dict[str, float]) -> None:
        self.truth, self.calls = truth, []

    def score(self, spec, seed):
        self.calls.append((str(spec), seed))
        shared = np.random.default_rng(seed).normal(0, 0.01)
        residual = np.random.default_rng([seed, zlib.crc32(str(spec).encode())]).normal(0, 0.002)
        return {"mAP": self.truth.get(str(spec), 0.70) + shared + residual, "train_steps": 120}


# in HAND, SE at layer3.5 and ECA at layer4.0 both scored 0.72 under seed 0; only SE is really better
TRUTH = {"resnet50": 0.70, SE: 0.72, ECA: 0.70, CNL: 0.74}


def test_a_real_gain_is_confirmed_a_lucky_pick_refuted_and_nothing_is_trained_twice():
    study, trainer = make_study(HAND), PlantedEvaluator(TRUTH)
    decided = confirm(study, trainer, [SE, ECA], seeds=4)
    assert decided.confirmed == [SE] and not decided.result(ECA).confirmed
    assert decided.seeds == [1002, 1003, 1004, 1005]  # 1000 above the largest seed the study used: never used
    assert decided.result(SE).gain == pytest.approx(0.02, abs=0.004)
    assert decided.result(SE).search_gain == pytest.approx(0.022)  # the search's estimate, beside it
    assert sorted(trainer.calls) == sorted((s, k) for s in ("resnet50", SE, ECA) for k in range(1002, 1006))
    confirm(study, trainer, [SE], seeds=4)  # again: everything is recorded in the study
    assert len(trainer.calls) == 12
    assert "1 of 2 pick(s) confirmed (family-wise 5%, Holm" in decided.sentence()


def test_the_dashboard_shows_the_search_estimate_beside_the_confirmation(tmp_path):
    study = make_study(HAND)
    confirm(study, PlantedEvaluator(TRUTH), [SE, ECA], seeds=4)
    page = write_report(study, tmp_path)["html"].read_text()
    table = page.split('id="confirmation">')[1].split("</table>")[0]
    assert "gain in the search (selected: biased up)" in table and "gain on 4 fresh seeds" in table
    assert table.count("<tr>") == 3 and "not confirmed" in table  # header + two picks
    evidence = page.split('id="evidence">')[1].split("</ul>")[0]
    assert "confirmation on 4 fresh seeds (1002, 1003, 1004, 1005) against resnet50: 1 of 2 pick(s) confirmed" in evidence


#: HAND with ECA a little luckier under seed 0: the best of the fastest, and a pick that will not hold up
LUCKY = [(ECA, 0.725, 1.01) if entry[0] == ECA else entry for entry in HAND]


def test_export_takes_a_confirmed_pick_and_refuses_a_refuted_one(tmp_path):
    study = make_study(LUCKY)
    retrain = PlantedEvaluator(TRUTH)

    def again(spec):
        return confirm(study, retrain, [spec], 4)

    with pytest.raises(UnconfirmedError) as refused:
        export_spec(study, "latency<=1.01", tmp_path / "eca", confirm=again)  # ECA: the best mAP at 1.01
    message = str(refused.value)
    assert message.startswith(f"{ECA} did not survive confirmation: ") and "on 4 fresh seeds (not confirmed" in message
    assert "\n" not in message
    assert "the search said +2.7 mAP points" in message  # the winner's curse, in numbers
    spec, record = export_spec(study, "latency<=1.01", tmp_path / "eca", allow_unconfirmed=True, confirm=again)
    assert str(spec) == ECA and record["verdict"]["confirmed"] is False and "did not survive" in record["verdict"]["unconfirmed"]
    spec, record = export_spec(study, "max_map", tmp_path / "cnl", confirm=again)
    assert str(spec) == CNL and record["verdict"]["confirmed"] is True  # Holm over all three picks, still clear
    assert record["verdict"]["confirmation"]["gain"] == pytest.approx(0.04, abs=0.004)


def export(tmp_path, storage, *overrides):
    register_configs()
    with initialize_config_module(config_module="attnas.conf", version_base="1.3"):
        cfg = typed(compose("export", overrides=[f"storage={storage}", "study_name=hand", f"out={tmp_path / 'out'}", *overrides]))
    try:
        export_app.run(cfg)
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_export_exits_3_in_one_line_unless_allowed_to_export_unconfirmed(tmp_path, caplog):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_study(HAND, storage=storage)  # made by hand: no evaluator config to retrain with
    with caplog.at_level(logging.ERROR, logger="attnas.export"):
        assert export(tmp_path, storage, "pick='latency<=1.015'") == 3
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith(f"{SE} was not confirmed on fresh seeds: the study records no evaluator_config") and "\n" not in line
    assert line.endswith("; allow_unconfirmed=true exports anyway, with this verdict")
    assert not (tmp_path / "out").exists()
    assert export(tmp_path, storage, "pick='latency<=1.015'", "confirm_seeds=0", "allow_unconfirmed=true") == 0
    written = yaml.safe_load((tmp_path / "out" / "architecture.yaml").read_text())
    assert written["verdict"]["confirmed"] is False and "confirm.seeds=0" in written["verdict"]["unconfirmed"]
    study = optuna.load_study(study_name="hand", storage=storage)
    confirm(study, PlantedEvaluator(TRUTH), [SE], seeds=4)  # recorded in the study: export needs no evaluator now
    assert export(tmp_path, storage, "pick='latency<=1.015'") == 0
    assert yaml.safe_load((tmp_path / "out" / "architecture.yaml").read_text())["verdict"]["confirmed"] is True
    assert export(tmp_path, storage, "confirm_seeds=1") == 2  # a confirmation needs two fresh seeds


def test_export_refuses_when_no_candidate_is_significant(tmp_path, caplog):
    from tests.test_analysis import coin_toss_study

    storage = f"sqlite:///{tmp_path / 's.db'}"
    coin_toss_study(storage=storage)
    with caplog.at_level(logging.ERROR, logger="attnas.export"):
        assert export(tmp_path, storage) == 3
    assert "no candidate beats resnet50 beyond seed noise at this budget: best +" in caplog.text


def test_racing_gives_the_most_undecided_architecture_one_more_seed():
    means = np.array([[0.80, 1.00], [0.70, 1.50], [0.75, 0.95], [0.751, 0.95], [0.60, 1.20]])
    ses = np.array([[0.001, 0.0], [0.001, 0.0], [0.02, 0.0], [0.02, 0.0], [0.001, 0.0]])
    # row 0 (the best) is on the front, rows 1 and 4 (dominated by it) are not: decided; rows 2 and 3 (faster
    # than row 0, equally fast as each other) are a coin toss for the front's fast end
    assert next_race(means, ses, ["maximize", "minimize"], np.array([1, 1, 1, 1, 1]), max_seeds=3) in (2, 3)
    assert next_race(means, ses, ["maximize", "minimize"], np.array([1, 1, 3, 3, 1]), max_seeds=3) is None


def test_a_race_is_an_enqueued_re_proposal_within_the_seed_budget():
    space = SearchSpace("resnet50", ["layer3", "layer4"], ("se", "eca"), max_blocks=1)
    study = make_study([("resnet50", [0.70, 0.71, 0.69], 1.00, ("reference", True)),
                        (SE, 0.705, 1.01), (ECA, 0.706, 1.01), ("resnet50:layer4.2=se", 0.60, 1.01)])
    floors = noise_floors(study.trials, ["mAP"])
    running = study.ask()
    running.set_user_attr("spec", "resnet50:layer4.1=eca")
    running.set_user_attr("metrics", {"mAP": 0.50, "latency_ratio": 1.01})
    assert schedule_race(running, space, ["mAP", "latency_ratio"], ["maximize", "minimize"], floors, {}, 3, budget=1.0) is None
    raced = schedule_race(running, space, ["mAP", "latency_ratio"], ["maximize", "minimize"], floors, {}, 3, budget=1.5)
    assert raced in (SE, ECA)  # a tie within seed noise; the plain backbone and the clearly worse are decided
    study.tell(running, [0.50, 1.01])
    trial = study.ask()  # the enqueued race comes first and decodes to the raced spec
    assert str(space.sample(trial)) == raced and trial.user_attrs["racing_seeds"] == 2


@pytest.mark.slow
def test_search_confirms_its_best_and_export_decides_on_fresh_seeds(tmp_path):
    bin_dir = Path(sys.executable).parent
    search = subprocess.run([str(bin_dir / "attnas-search"), "space=resnet18", "evaluator=tiny", "n_trials=3", "progress=false",
                             f"dataset.root={tmp_path / 'synth'}", "dataset.synth.ids=16", "confirm.count=1", "confirm.seeds=2",
                             "evaluator.reference_repeats=2", f"hydra.run.dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=1200)
    assert search.returncode == 0, search.stderr[-3000:]
    output = search.stdout + search.stderr
    assert "confirmation: training" in output and "fresh seeds" in output
    assert "THE VALIDATION SPLIT CANNOT RANK ARCHITECTURES" in output  # tiny: 4 validation ids
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)  # attnas-resnet18-synthetic-<data digest>-tiny
    study = optuna.load_study(study_name=name, storage=storage)
    record = study.user_attrs["confirmation"]
    assert record["seeds"] == [1001, 1002] and len(record["runs"]) == 2  # the plain backbone and the pick
    refused = subprocess.run([str(bin_dir / "attnas-export"), f"storage={storage}", f"study_name={name}",
                              f"out={tmp_path / 'exp'}"], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 3 and "the validation split cannot rank architectures" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_a_search_with_racing_reevaluates_undecided_architectures_within_its_budget(tmp_path, monkeypatch, caplog):
    from tests.test_search import config, patch_score

    def stub(inner):  # training replaced: every spec the same mAP, seed noise only
        def score(spec, seed):
            noise = np.random.default_rng([seed, zlib.crc32(str(spec).encode())]).normal(0, 0.01)
            return {"mAP": 0.30 + noise, "rank1": 0.5, "rank5": 0.6, "rank10": 0.7, "mINP": 0.1, "train_seconds": 0.0,
                    "train_steps": 0}
        return score

    patch_score(monkeypatch, stub)
    with caplog.at_level(logging.INFO, logger="attnas.search"):
        study = run_search(config(tmp_path, "n_trials=10", "sampler=random", "evaluator.racing=true",
                                  "evaluator.reference_repeats=3"))
    # every trial's log line states its gain within the seeds it shares with the plain backbone
    assert re.search(r"trial \d+ resnet18:\S+: mAP [0-9.]+ ± [0-9.]+, latency_ratio [0-9.]+ ± [0-9.]+ \(1 seed\), "
                     r"[+-][0-9.]+ mAP points \(± [0-9.]+\) over resnet18 within shared seeds, \d+ s", caplog.text), caplog.text
    assert "seed-blocked noise of mAP: seed effect sd" in caplog.text and "racing: " in caplog.text
    races = [t for t in study.trials if t.user_attrs.get("race_of")]
    assert races, "an undecided architecture should have been raced"
    for race_trial in races:
        assert race_trial.user_attrs["spec"] == race_trial.user_attrs["race_of"]
        assert len(race_trial.user_attrs["per_seed"]["seeds"]) == race_trial.user_attrs["racing_seeds"] >= 2
    references = {t.user_attrs["spec"] for t in study.trials if t.user_attrs.get("reference")}
    candidates = {t.user_attrs["spec"]: len(t.user_attrs["per_seed"]["seeds"]) for t in study.trials
                  if t.user_attrs["spec"] not in references}
    assert sum(candidates.values()) <= 1.5 * len(candidates)  # racing_budget
