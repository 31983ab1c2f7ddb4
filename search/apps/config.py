"""The apps' typed configs (Hydra structured configs) and their registration with Hydra.

Every config group has a schema: the dataclass of the package that owns the knob (a space's in
`attnas.space`, an evaluator's and a dataset's in `attnas.evaluators`, a sampler's in
`attnas.search.samplers`). `register_configs()` puts them in Hydra's ConfigStore as
`<group>/base_<kind>`, and each yaml in `conf/<group>/` extends one of them, setting only what
that option changes. `attnas.search.apps.validate` checks a composed config against them.
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from attnas.evaluators import EVALUATORS
from attnas.evaluators.config import DeviceConfig
from attnas.evaluators.reid.training import TrainOverrides
from attnas.evaluators.reid.datasets import DATASETS
from attnas.search.config import ConfigError, SearchConfig, data_tag
from attnas.search.names import folder_name
from attnas.search.samplers import SAMPLERS
from attnas.space import SpaceConfig
from attnas.models import INPUT_SIZE, backbone_names


@dataclass
class ReportConfig:
    """`attnas-report storage=... study_name=...`"""

    storage: str = MISSING
    study_name: str = MISSING
    out: Optional[str] = None  # None: default_output(storage, study_name, "report"), e.g. runs/<study>/report
    profile: Optional[str] = None  # redraw with another device's latency, predicted from this profile
    plugins: list[str] = field(default_factory=list)  # modules that registered the study's entries (apps/plugins.py)


@dataclass
class ExportConfig:
    """`attnas-export storage=... study_name=... pick=knee`"""

    storage: str = MISSING
    study_name: str = MISSING
    pick: str = "knee"  # knee | max_map | METRIC<=VALUE, e.g. latency<=1.05
    alpha: float = 0.05  # error level: false discovery rate of the significant list, family-wise of the confirmation
    # retrain a pick the study holds no confirmation of, and the plain backbone, under this many fresh seeds
    # (what attnas-search confirm.count=K does for its K best); 0: never, and only allow_unconfirmed exports it
    confirm_seeds: int = 5
    allow_unconfirmed: bool = False  # export a pick that is not significant or not confirmed (the verdict is written with it)
    device: Any = MISSING  # where a confirmation trains; it must be the study's (its fingerprint is checked)
    out: Optional[str] = None  # None: default_output(storage, study_name, "export"), e.g. runs/<study>/export
    overwrite: bool = False  # replace an export of another spec in `out`
    model: bool = False  # also write state_dict, TorchScript and ONNX (when onnx is installed)
    weights: Optional[str] = None  # the model.pt attnas-train wrote for the picked architecture
    untrained: bool = False  # with model=true and no weights: export random weights, marked untrained
    profile: Optional[str] = None  # pick by another device's latency, predicted from this profile
    input_size: list[int] = field(default_factory=lambda: list(INPUT_SIZE))
    plugins: list[str] = field(default_factory=list)  # modules that registered the study's entries (apps/plugins.py)


def default_output(storage: str, study_name: str, kind: str) -> str:
    """Where a study's reports and exports go unless told: beside a file storage, in the study's
    own folder (`runs/<study>/study.db` -> `runs/<study>/report`) or, when the file holds other
    studies too, under their name (`shared/all.db` -> `shared/reports/<study>`); for a server,
    `runs/<study>/<kind>`. `<study>` is the study's folder name (`attnas.search.names`): a name
    such as `../x` never leads outside."""
    folder_of_study = folder_name(study_name)
    for prefix in ("sqlite:///", "journal:"):
        if storage.startswith(prefix):
            folder = Path(storage.removeprefix(prefix)).parent
            return str(folder / kind if folder.name == folder_of_study else folder / f"{kind}s" / folder_of_study)
    return str(Path("runs") / folder_of_study / kind)


@dataclass
class ProfileConfig:
    """`attnas-profile`: time every single-block model of a space on this device."""

    space: Any = MISSING
    device: Any = MISSING
    out: Optional[str] = None  # default: profiles/<backbone>-<device>-<threads>t-b<batch>-<H>x<W>.json
    batch_size: int = 1
    input_size: list[int] = field(default_factory=lambda: list(INPUT_SIZE))
    warmup: int = 5
    repeats: int = 30  # timed (single-block, plain) pairs per entry
    runtime: str = "eager"  # eager | onnxruntime | tensorrt: the runtime the robot deploys
    precision: str = "fp32"  # fp32 | fp16 | bf16
    channels_last: bool = False  # eager: NHWC memory layout
    cuda_graphs: bool = False  # eager on CUDA: replay a recorded graph
    retries: int = 2  # a disturbed entry is timed again this many times, then left out of the file (run again to add it)
    max_seconds: Optional[float] = 60.0  # one entry's timing holds the device at most this long
    resume: bool = True  # keep what a killed run measured
    progress: bool = True
    plugins: list[str] = field(default_factory=list)  # modules registering entries first (apps/plugins.py)


@dataclass
class TrainAppConfig:
    """`attnas-train spec=... dataset=... dataset.root=... budget=... out=...`: train one architecture."""

    spec: str = MISSING  # spec text (resnet50:layer3.5=cnl) or an exported architecture.yaml/.json
    dataset: Any = MISSING
    device: Any = MISSING
    budget: str = "proxy"  # a training budget of attnas.evaluators.reid.budgets.BUDGETS
    train: TrainOverrides = field(default_factory=TrainOverrides)  # the budget's settings changed, e.g. train.epochs=8
    pretrained: Optional[str] = None  # imagenet (torchvision cache) or a state_dict path
    seed: int = 0
    out: str = MISSING  # folder for model.pt, spec.yaml and metrics.json
    progress: bool = False  # a progress bar over the steps (log lines with the ETA come anyway)


def sweep_name() -> str:
    """The job's overrides as a folder- and study-name-safe string (`space.max_blocks-2__seed-1`);
    empty outside a --multirun job. Hydra's own name has `=` and `,`, which Hydra's grammar then
    refuses when the path is passed back (storage=sqlite:///runs/multirun/...)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        config = HydraConfig.get()
    except ValueError:  # composed outside an app (tests, the Python API)
        return ""
    if config.mode != RunMode.MULTIRUN:
        return ""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", config.job.override_dirname or "").strip("_")


def register_configs() -> None:
    """Put every schema in Hydra's ConfigStore and the resolvers in OmegaConf (idempotent);
    call before composing."""
    OmegaConf.register_new_resolver("attnas.sweep_name", sweep_name, replace=True)
    OmegaConf.register_new_resolver("attnas.sweep_suffix", lambda: f"-{sweep_name()}" if sweep_name() else "", replace=True)
    OmegaConf.register_new_resolver("attnas.folder", lambda name: folder_name(str(name)), replace=True)  # runs/<folder>/
    OmegaConf.register_new_resolver("attnas.data_tag", lambda *, _root_: data_tag(_root_.dataset), replace=True)
    store = ConfigStore.instance()
    store.store(name="search_schema", node=SearchConfig)
    store.store(name="report_schema", node=ReportConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="profile_schema", node=ProfileConfig)
    store.store(name="train_schema", node=TrainAppConfig)
    store.store(group="space", name="base_space", node=SpaceConfig)
    store.store(group="device", name="base_device", node=DeviceConfig)
    for name, entry in DATASETS.items():  # `name` set: conf/dataset/<name>.yaml sets only what differs
        store.store(group="dataset", name=f"base_{name}", node=entry.config_class(name=name))
    for kind, evaluator in EVALUATORS.items():
        store.store(group="evaluator", name=f"base_{kind}", node=evaluator.config_class)
    for name, (schema, _) in SAMPLERS.items():
        store.store(group="sampler", name=f"base_{name}", node=schema)
    store_unlisted_options(store)


def store_unlisted_options(store: ConfigStore) -> None:
    """An entry registered without a yaml standing for it (a plugin's, a test's) is an option all
    the same, named after it, with its schema's defaults: `dataset=<name>`, `evaluator=<type>`,
    `sampler=<name>`, and `space=<backbone>` for every registered backbone (the plain backbone its
    reference). A yaml, where there is one, is the option instead."""
    groups = {"dataset": {name: entry.config_class(name=name) for name, entry in DATASETS.items()},
              "evaluator": {kind: evaluator.config_class for kind, evaluator in EVALUATORS.items()},
              "sampler": {name: schema for name, (schema, _) in SAMPLERS.items()}}
    for group, nodes in groups.items():
        extended = _extended_schemas(group)
        for name, node in nodes.items():
            if f"base_{name}" not in extended:
                store.store(group=group, name=name, node=node)
    spaces = {entry.name.removesuffix(".yaml") for entry in (resources.files("attnas.conf") / "space").iterdir()}
    for backbone in backbone_names():
        if backbone not in spaces:
            store.store(group="space", name=backbone, node=SpaceConfig(backbone=backbone, references=[backbone]))


def _extended_schemas(group: str) -> set[str]:
    """The `base_<name>` schemas that the yaml files of `conf/<group>/` extend."""
    found = set()
    for entry in (resources.files("attnas.conf") / group).iterdir():
        if entry.name.endswith(".yaml"):
            found.update(d for d in (yaml.safe_load(entry.read_text()) or {}).get("defaults", []) if isinstance(d, str))
    return found
