"""Contract tests of the extension points: for each registry (block, backbone family, metric,
latency source, evaluator, sampler, data set) a toy entry is registered for the test only
(`Registry.temporarily`) and run end to end through attnas-search's own entry point, and its
effect is read back from the study. Each test does exactly what the recipe in its docstring (and
in the README, "Extending") tells a user to do.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from torchvision.models.regnet import ResBottleneckBlock

from attnas.evaluators import EVALUATORS, LATENCY_SOURCES, METRICS, CostEvaluator, Evaluator, LatencySource, Metric
from attnas.evaluators.base import digest
from attnas.evaluators.config import CostEvaluatorConfig, DatasetConfig, EvaluatorConfig
from attnas.evaluators.cost import model_cost
from attnas.evaluators.reid.datasets import DATASETS, DatasetEntry, ReIDDataset
from attnas.evaluators.reid.datasets.market import load_market_layout
from attnas.evaluators.reid.datasets.synthetic import SynthConfig, generate
from attnas.models import BLOCKS, FAMILIES, attention_modules, build_model
from attnas.models.backbones import BackboneFamily, Position
from attnas.search.apps import search_app
from attnas.search.samplers import SAMPLERS, SamplerConfig
from attnas.space import ArchSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def attnas_search(tmp_path: Path, monkeypatch, *overrides: str, data: tuple[str, ...] | None = None) -> optuna.Study:
    """`attnas-search OVERRIDES` run through its console entry point in this process, with a
    storage in `tmp_path` and, unless `data` says otherwise, a small embedded data set (only
    evaluators that train read it); the study it wrote."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    data = (f"dataset.root={tmp_path / 'synth'}", "dataset.synth.ids=16") if data is None else data
    monkeypatch.setattr(sys, "argv", ["attnas-search", f"hydra.run.dir={tmp_path / 'run'}", f"storage={storage}", *data,
                                      "progress=false", "report=false", "evaluator.reference_repeats=1", *overrides])
    try:
        search_app.main()
    except SystemExit as exit:
        pytest.fail(f"attnas-search {' '.join(sys.argv[1:])} exited with status {exit.code}")
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def complete(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["spec"]: t for t in study.get_trials(states=(TrialState.COMPLETE,))}


# -- an attention block ---------------------------------------------------------------------------
class Gate(nn.Module):
    """A learned gate per channel group, 2 * sigmoid(0) = 1 at insertion: the identity."""

    spec_options = {"g": "groups"}

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups must divide the channels, got {groups}")
        self.logit = nn.Parameter(torch.zeros(groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = 2 * torch.sigmoid(self.logit).repeat_interleave(x.shape[1] // len(self.logit))
        return x * gate[None, :, None, None]


def test_a_block_is_its_module_and_one_registry_line(tmp_path, monkeypatch):
    """To add an attention block: write `Block(channels, **options)` that starts as the identity
    (optionally `spec_options = {"g": "groups"}`), and register it: `BLOCKS.register("gate", Gate)`
    (a line in models/blocks/__init__.py). Every space offers it unless its yaml narrows the blocks."""
    with BLOCKS.temporarily("gate", Gate):
        study = attnas_search(tmp_path, monkeypatch, "space=resnet18", "space.blocks=null", "evaluator=cost",
                              "sampler=random", "n_trials=3", "space.references=[resnet18,'resnet18:layer4.1=gate']")
    assert "gate" in study.user_attrs["space"]["blocks"]
    trials = complete(study)
    added = trials["resnet18:layer4.1=gate"].user_attrs["params_m"] - trials["resnet18"].user_attrs["params_m"]
    assert added == pytest.approx(1e-6)  # its one gate logit, at the position the spec names


# -- a backbone family ----------------------------------------------------------------------------
class AttentiveResBottleneck(ResBottleneckBlock):
    def __init__(self, block: ResBottleneckBlock, attention: nn.Module, placement: str) -> None:
        nn.Module.__init__(self)
        self.proj, self.f, self.activation = block.proj, block.f, block.activation
        self.attention, self.placement = attention, placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.f(x)
        if self.placement == "pre":
            branch = self.attention(branch)
        out = self.activation((x if self.proj is None else self.proj(x)) + branch)
        return self.attention(out) if self.placement == "post" else out


class RegNetFamily(BackboneFamily):
    """RegNetX-400MF: spec names `block4.11` for torchvision's `trunk_output.block4.block4-11`."""

    names = ("regnet_x_400mf",)
    classifier_prefixes = ("fc.",)

    def positions(self, name: str) -> tuple[Position, ...]:
        return tuple(Position(f"block{s}.{i}", f"trunk_output.block{s}.block{s}-{i}", f"block{s}", width)
                     for s, (depth, width) in enumerate(zip((1, 2, 7, 12), (32, 64, 160, 400)), 1) for i in range(depth))

    def out_channels(self, name: str) -> int:
        return 400

    def attach(self, block: nn.Module, attention: nn.Module, placement: str) -> nn.Module:
        return AttentiveResBottleneck(block, attention, placement)

    def features(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return net.trunk_output(net.stem(x))

    def set_last_stride(self, net: nn.Module, stride: int) -> None:
        first = net.trunk_output.block4[0]
        first.proj[0].stride = first.f.b[0].stride = (stride, stride)


def test_a_backbone_family_is_an_adapter_that_declares_its_positions(tmp_path, monkeypatch):
    """To add a backbone family: write an adapter (`BackboneFamily`: `names`, `classifier_prefixes`,
    `positions(name)` declaring each position's spec name, module path, stage and channels,
    `out_channels`, `attach`, `features`, `set_last_stride`) and register it:
    `FAMILIES.register("regnet", RegNetFamily())` (a line in models/backbones/__init__.py).
    `space=<model>` then searches it; a `conf/space/<model>.yaml` narrows it or adds references."""
    with FAMILIES.temporarily("regnet", RegNetFamily()):
        spec = ArchSpec.parse("regnet_x_400mf:block2.1=se@pre,block4.11=cnl")
        torch.manual_seed(0)
        plain = build_model("regnet_x_400mf", 3).eval()
        torch.manual_seed(0)
        model = build_model(spec, 3).eval()
        x = torch.randn(1, 3, 64, 32)
        torch.testing.assert_close(model(x), plain(x))  # identity at insertion
        assert attention_modules(model)["block4.11"] is model.backbone.trunk_output.block4[11].attention
        study = attnas_search(tmp_path, monkeypatch, "space=regnet_x_400mf", "space.placements=[post,pre]", "evaluator=cost",
                              "sampler=random", "n_trials=3", f"space.references=[regnet_x_400mf,'{spec}']")
    trials = complete(study)
    assert study.user_attrs["space"]["positions"][-1] == "block4.11" and len(trials) == 3
    assert trials[str(spec)].user_attrs["params_m"] > trials["regnet_x_400mf"].user_attrs["params_m"]


# -- a metric -------------------------------------------------------------------------------------
@dataclass
class BlockCountConfig(CostEvaluatorConfig):
    type: str = "blockcount"
    name: str = "blockcount"
    objectives: list[str] = field(default_factory=lambda: ["gflops", "attention_blocks"])


class BlockCountEvaluator(CostEvaluator):
    """FLOPs and params, and how many attention blocks a spec inserts."""

    config_class = BlockCountConfig

    def produces(self) -> tuple[str, ...]:
        return (*super().produces(), "attention_blocks")

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        return super().measure_cost(spec) | {"attention_blocks": float(spec.num_blocks)}

    def fingerprint(self) -> str:
        return digest(["blockcount", super().fingerprint()])


def test_a_metric_is_one_registry_entry_and_what_returns_it(tmp_path, monkeypatch):
    """To add a metric: register `Metric(name, direction, unit, description)` in `METRICS` (an entry
    in evaluators/metric_registry.py) and return it from an evaluator that declares it in
    `produces()`. It is then an objective (`evaluator.objectives=[...]`) and a constraint
    (`+constraints.<name>=LIMIT`) like any built-in one."""
    blocks = Metric("attention_blocks", "minimize", "blocks", "attention blocks the spec inserts", label="blocks")
    with METRICS.temporarily("attention_blocks", blocks), EVALUATORS.temporarily("blockcount", BlockCountEvaluator):
        study = attnas_search(tmp_path, monkeypatch, "evaluator=blockcount", "+constraints.attention_blocks=1",
                              "space=resnet18", "sampler=random", "n_trials=5")
    assert study.metric_names == ["gflops", "attention_blocks"]
    for spec, trial in complete(study).items():
        assert trial.values[1] == ArchSpec.parse(spec).num_blocks
        assert trial.constraints == {"attention_blocks": ArchSpec.parse(spec).num_blocks - 1.0}  # feasible when <= 0


# -- a latency source -----------------------------------------------------------------------------
class FlopsLatency(LatencySource):
    """Latency predicted as the ratio of FLOPs to the plain backbone's: no timing at all."""

    name = "flops"

    def __init__(self, input_size: tuple[int, int]) -> None:
        self.input_size = input_size

    @classmethod
    def from_config(cls, settings, device) -> "FlopsLatency":
        return cls(tuple(settings.input_size))

    def gflops(self, spec: ArchSpec | str) -> float:
        return model_cost(build_model(spec, num_classes=1), self.input_size).gflops

    def measure(self, spec: ArchSpec) -> dict[str, float]:
        return {"latency_ratio": self.gflops(spec) / self.gflops(spec.backbone)}

    def produces(self) -> tuple[str, ...]:
        return ("latency_ratio",)

    def fingerprint(self) -> str:
        return digest(["flops", list(self.input_size)])

    @classmethod
    def describe(cls, context: dict) -> str:
        return "predicted from FLOPs, never timed"


def test_a_latency_source_is_a_class_that_describes_itself(tmp_path, monkeypatch):
    """To add a latency source: subclass `LatencySource` (`name`, `from_config`, `measure`,
    `produces`, `fingerprint`, and `describe`, the dashboard's line), and register it:
    `LATENCY_SOURCES.register("flops", FlopsLatency)` (a line in evaluators/latency/sources.py).
    `evaluator.latency.source=flops` then uses it in every evaluator that measures latency."""
    with LATENCY_SOURCES.temporarily("flops", FlopsLatency):
        study = attnas_search(tmp_path, monkeypatch, "evaluator=latency", "evaluator.latency.source=flops", "report=true",
                              "space=resnet18", "sampler=random", "n_trials=3")
        for spec, trial in complete(study).items():
            assert trial.user_attrs["latency_ratio"] == pytest.approx(FlopsLatency((256, 128)).measure(ArchSpec.parse(spec))[
                "latency_ratio"])
            assert trial.user_attrs["measured_on"] == {"latency_source": "flops"}
    dashboard = next((tmp_path / "reports").rglob("dashboard.html")).read_text()
    assert "Latency: predicted from FLOPs, never timed." in dashboard


# -- an evaluator ---------------------------------------------------------------------------------
@dataclass
class OracleConfig(EvaluatorConfig):
    type: str = "oracle"
    name: str = "oracle"
    objectives: list[str] = field(default_factory=lambda: ["mAP", "params_m"])


class OracleEvaluator(Evaluator):
    """Scores without training: a known mAP per block count, moved a little by the seed."""

    config_class = OracleConfig

    @classmethod
    def from_config(cls, cfg, dataset, device, workdir) -> "OracleEvaluator":
        return cls()

    def produces(self) -> tuple[str, ...]:
        return ("mAP", "params_m")

    def measure_cost(self, spec: ArchSpec) -> dict[str, float]:
        return {"params_m": 11.0 + spec.num_blocks}

    def score(self, spec: ArchSpec, seed: int, fidelity: float = 1.0) -> dict[str, float]:
        return {"mAP": oracle_map(spec, seed)}

    def fingerprint(self) -> str:
        return "oracle-1"


def oracle_map(spec: ArchSpec, seed: int) -> float:
    return 0.5 + 0.01 * spec.num_blocks + 0.001 * seed


def test_an_evaluator_is_a_class_with_its_config_schema(tmp_path, monkeypatch):
    """To add an evaluator: subclass `Evaluator` (`from_config`, `produces`, `measure_cost`,
    `fingerprint`; `score` when it trains), give it `config_class`, a dataclass extending
    `EvaluatorConfig` whose `type` is the registered name, and register it:
    `EVALUATORS.register("oracle", OracleEvaluator)` (a line in evaluators/registry.py).
    `evaluator=oracle` then uses its schema's defaults; a `conf/evaluator/<name>.yaml` sets others."""
    with EVALUATORS.temporarily("oracle", OracleEvaluator):
        study = attnas_search(tmp_path, monkeypatch, "evaluator=oracle", "evaluator.repeats=2", "space=resnet18",
                              "sampler=random", "n_trials=4", "space.references=[resnet18]")
    assert study.user_attrs["evaluator"] == "oracle-1" and study.user_attrs["evaluator_config"]["type"] == "oracle"
    proposed = {spec: trial for spec, trial in complete(study).items() if not trial.user_attrs.get("reference")}
    for spec, trial in proposed.items():  # the references were asked for reference_repeats=1 seed
        runs = trial.user_attrs["per_seed"]
        assert runs["seeds"] == [0, 1] and runs["mAP"] == [oracle_map(ArchSpec.parse(spec), s) for s in (0, 1)]
        assert trial.values == [pytest.approx(sum(runs["mAP"]) / 2), 11.0 + ArchSpec.parse(spec).num_blocks]


# -- a sampler ------------------------------------------------------------------------------------
@dataclass
class OnePositionConfig(SamplerConfig):
    name: str = "one_position"
    position: str = "layer4.1"  # where every proposal puts its one block


class OnePositionSampler(optuna.samplers.RandomSampler):
    """Random blocks, always at one position (a slots-encoded space: slot0 there, the rest empty)."""

    def __init__(self, position: str, seed: int | None) -> None:
        super().__init__(seed=seed)
        self.position = position

    def sample_independent(self, study, trial, param_name, param_distribution):
        if param_name.endswith("_position"):
            return self.position if param_name == "slot0_position" else "none"
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_a_sampler_is_a_config_schema_and_a_factory(tmp_path, monkeypatch):
    """To add a sampler: write its config dataclass (extending `SamplerConfig`, `name` defaulting to
    the registered name) and a factory `(config, seed, context) -> optuna BaseSampler`, and register
    them: `SAMPLERS.register("one_position", (OnePositionConfig, factory))` (a line in
    search/samplers.py). `sampler=one_position sampler.position=...` then uses it."""
    factory = (lambda cfg, seed, context=None: OnePositionSampler(cfg.position, seed))
    with SAMPLERS.temporarily("one_position", (OnePositionConfig, factory)):
        study = attnas_search(tmp_path, monkeypatch, "sampler=one_position", "sampler.position=layer4.0", "evaluator=cost",
                              "space=resnet18", "n_trials=4", "space.references=[resnet18]")
    proposed = [ArchSpec.parse(spec) for spec, trial in complete(study).items() if not trial.user_attrs.get("reference")]
    assert proposed and all(list(spec.blocks) == ["layer4.0"] for spec in proposed)


# -- a data set -----------------------------------------------------------------------------------
@dataclass
class FewIdsConfig(DatasetConfig):
    name: str = "few_ids"
    train_ids: int = 8  # training identities kept


def load_few_ids(root: str | Path, train_ids: int = 8) -> ReIDDataset:
    """A Market-layout folder with only its first `train_ids` training identities."""
    full = load_market_layout(root, "few_ids")
    kept = sorted({r.pid for r in full.train})[:train_ids]
    return ReIDDataset("few_ids", [r for r in full.train if r.pid in kept], full.query, full.gallery, root=full.root)


@pytest.mark.slow
def test_a_data_set_is_a_loader_and_its_config_schema(tmp_path, monkeypatch):
    """To add a data set: write a loader `(root, **options) -> ReIDDataset` and a config dataclass
    extending `DatasetConfig` (its fields beyond `name` and `root` are the loader's options), and
    register them: `DATASETS.register("few_ids", DatasetEntry(load_few_ids, "what the folder holds",
    FewIdsConfig))` (a line in evaluators/reid/datasets/__init__.py). `dataset=few_ids
    dataset.root=PATH dataset.train_ids=6` then loads it."""
    root = generate(tmp_path / "market-like", SynthConfig(ids=24))
    with DATASETS.temporarily("few_ids", DatasetEntry(load_few_ids, "a Market-1501-layout folder", FewIdsConfig)):
        study = attnas_search(tmp_path, monkeypatch, "dataset=few_ids", "dataset.train_ids=10", "evaluator=tiny",
                              "space=resnet18", "n_trials=2", data=(f"dataset.root={root}",))
    assert study.user_attrs["data"]["summary"].startswith("few_ids: train 10 ids")
    assert study.user_attrs["validation"]["ids"] and all(math.isfinite(t.values[0]) for t in complete(study).values())


# -- a plugin -------------------------------------------------------------------------------------
def test_a_plugin_registers_entries_without_editing_attnas(tmp_path, monkeypatch, capsys):
    """Without editing attnas: put the registration in a module of your own and name it in
    `plugins=[...]`; it is imported before the config is checked (workers import it too)."""
    (tmp_path / "my_gates.py").write_text("from attnas.models import BLOCKS\nfrom tests.test_contracts import Gate\n\n"
                                          "BLOCKS.register('plugged_gate', Gate)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        study = attnas_search(tmp_path, monkeypatch, "plugins=[my_gates]", "space=resnet18", "space.blocks=[plugged_gate]",
                              "evaluator=cost", "n_trials=2", "space.references=[resnet18,'resnet18:layer4.1=plugged_gate']")
    finally:
        BLOCKS.pop("plugged_gate", None)
        sys.modules.pop("my_gates", None)
    assert set(complete(study)) == {"resnet18", "resnet18:layer4.1=plugged_gate"}
    monkeypatch.setattr(sys, "argv", ["attnas-search", "plugins=[no_such_plugin]"])
    with pytest.raises(SystemExit) as exit:
        search_app.main()
    assert exit.value.code == 2
    assert capsys.readouterr().err.startswith("attnas-search: error: plugin 'no_such_plugin' cannot be imported: "
                                              "ModuleNotFoundError: No module named 'no_such_plugin'; a plugin is a module")
