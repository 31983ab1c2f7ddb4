from math import comb

import optuna
import pytest

from attnas.models import BLOCKS
from attnas.space import ArchSpec, SearchSpace

BLOCK_TYPES = tuple(BLOCKS)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_cardinality_of_the_paper_space_is_counted_not_enumerated():
    paper = SearchSpace("resnet50", "all", ("se", "cbam", "nl", "cnl", "eca", "gc"), ("post",), max_blocks=3)
    assert paper.cardinality() == sum(comb(16, k) * 6**k for k in range(4)) == 125_377
    default = SearchSpace("resnet50", "all", max_blocks=3)  # every registered block
    assert default.blocks == BLOCK_TYPES and default.cardinality() == sum(comb(16, k) * len(BLOCKS) ** k for k in range(4))
    unlimited = SearchSpace("resnet50", "all", BLOCK_TYPES, ("post", "pre"), max_blocks=None)
    assert unlimited.cardinality() == (2 * len(BLOCKS) + 1) ** 16
    with pytest.raises(ValueError, match="more than limit"):
        next(paper.enumerate(limit=1000))


def test_enumeration_matches_cardinality_and_has_no_duplicates():
    space = SearchSpace("resnet50", ["layer3.5", "layer4"], ("se", "cnl"), ("post", "pre"), max_blocks=2)
    specs = list(space.enumerate())
    assert len(specs) == len(set(specs)) == space.cardinality() == 1 + 4 * 4 + 6 * 16
    assert specs[0] == ArchSpec.parse("resnet50")
    assert all(spec in space for spec in specs)


def test_positions_resolve_stages_and_explicit_positions():
    space = SearchSpace("resnet50", ["layer4", "layer2.3"])
    assert space.allowed_positions == ("layer2.3", "layer4.0", "layer4.1", "layer4.2")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(backbone="vgg16"), "unknown backbone 'vgg16'"),
        (dict(positions=["layer9"]), "position 'layer9' does not exist in resnet50"),
        (dict(blocks=("se", "transformer")), "unknown attention block 'transformer'"),
        (dict(placements=("middle",)), "unknown placement 'middle'"),
        (dict(blocks=("se", "se")), "duplicate block"),
        (dict(max_blocks=-1), "max_blocks must be >= 0"),
        (dict(encoding="positional", max_blocks=3), "use encoding='slots'"),
    ],
)
def test_bad_space_config_is_explained(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        SearchSpace(**kwargs)


def _sampler(name, seed=0):
    return {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=8),
    }[name]()


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_samplers_never_exceed_max_blocks(sampler):
    space = SearchSpace("resnet50", "all", BLOCK_TYPES, ("post", "pre"), max_blocks=3)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(sampler))
    seen = []

    def objective(trial):
        spec = space.sample(trial)
        seen.append(spec)
        return float(spec.num_blocks), float(len(str(spec)))

    study.optimize(objective, n_trials=30)
    assert all(spec in space for spec in seen)
    assert max(spec.num_blocks for spec in seen) <= 3
    assert len(set(seen)) > 10  # the encoding does reach different architectures


def test_bruteforce_visits_every_spec_of_a_small_positional_space():
    space = SearchSpace("resnet18", ["layer4"], ("se", "cnl"), ("post",), max_blocks=None)
    assert space.resolved_encoding == "positional"
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    seen = []
    study.optimize(lambda t: _record(space, t, seen), n_trials=100)
    assert set(seen) == set(space.enumerate()) and len(seen) == space.cardinality() == 9


def _record(space, trial, seen):
    spec = space.sample(trial)
    seen.append(spec)
    return float(spec.num_blocks)


@pytest.mark.parametrize("max_blocks", [None, 2])
def test_enqueued_params_decode_to_the_same_spec(max_blocks):
    space = SearchSpace("resnet50", "layer3", ("se", "cnl"), ("post", "pre"), max_blocks=max_blocks)
    wanted = [ArchSpec.parse("resnet50"), ArchSpec.parse("resnet50:layer3.1=se@pre,layer3.5=cnl")]
    study = optuna.create_study()
    for spec in wanted:
        study.enqueue_trial(space.params_for(spec))
    got = []
    study.optimize(lambda t: _record(space, t, got), n_trials=2)
    assert got == wanted


def test_every_trial_shares_every_parameter_so_nsga2_and_gp_evolve_the_blocks_too():
    # NSGA-II's crossover and the GP sampler only model the parameters all trials share; a block
    # parameter missing from the plain backbone's trial would be drawn at random forever.
    space = SearchSpace("resnet50", "all", ("se", "cnl"), ("post", "pre"), max_blocks=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(space.params_for(ArchSpec.parse("resnet50")))
    study.optimize(lambda t: float(space.sample(t).num_blocks), n_trials=20)
    shared = optuna.search_space.intersection_search_space(study.trials)
    assert set(shared) == {f"slot{i}_{name}" for i in range(2) for name in ("position", "block_if_used", "placement_if_used")}


def test_params_for_rejects_specs_outside_the_space():
    space = SearchSpace("resnet50", "layer3", ("se",), max_blocks=1)
    with pytest.raises(ValueError, match="not in this search space"):
        space.params_for(ArchSpec.parse("resnet50:layer4.0=se"))


def test_duplicate_slot_positions_keep_the_first_block():
    space = SearchSpace("resnet50", "all", ("se", "cnl"), max_blocks=2)
    trial = optuna.trial.FixedTrial(
        {"slot0_position": "layer3.5", "slot0_block_if_used": "cnl", "slot1_position": "layer3.5", "slot1_block_if_used": "se"}
    )
    assert space.sample(trial) == ArchSpec.parse("resnet50:layer3.5=cnl")


def test_block_options_are_separate_choices_of_the_space():
    space = SearchSpace("resnet50", ["layer4"], ["cnl", "cnl(r=8)", "se(r=16)"], max_blocks=1)
    assert space.blocks == ("cnl", "cnl(r=8)", "se")  # canonical: the default option is dropped
    assert space.cardinality() == 1 + 3 * 3
    specs = list(space.enumerate())
    assert ArchSpec.parse("resnet50:layer4.2=cnl(r=8)") in specs and ArchSpec.parse("resnet50:layer4.2=cnl(r=4)") not in space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for spec in specs:
        study.enqueue_trial(space.params_for(spec))
    got = []
    study.optimize(lambda t: _record(space, t, got), n_trials=len(specs))
    assert got == specs
    with pytest.raises(ValueError, match="duplicate block"):
        SearchSpace("resnet50", blocks=["cnl", "cnl(r=2)"])


def test_convnext_space_resolves_its_stages():
    space = SearchSpace("convnext_tiny", ["features.7", "features.5.8"], ["se"], max_blocks=1)
    assert space.allowed_positions == ("features.5.8", "features.7.0", "features.7.1", "features.7.2")
    with pytest.raises(ValueError, match="use 'all', a stage \\(features.1, features.3, features.5, features.7\\)"):
        SearchSpace("convnext_tiny", ["layer3"])
