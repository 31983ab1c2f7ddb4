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
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from attnas.evaluators import EVALUATORS
from attnas.evaluators.config import DeviceConfig
from attnas.evaluators.reid.datasets import DATASETS
from attnas.search.config import ConfigError, SearchConfig, data_tag
from attnas.search.samplers import SAMPLERS
from attnas.space import SpaceConfig
from attnas.models import INPUT_SIZE


@dataclass
class ReportConfig:
    """`attnas-report storage=... study_name=...`"""

    storage: str = MISSING
    study_name: str = MISSING
    out: Optional[str] = None  # None: default_output(storage, study_name, "report"), e.g. runs/<study>/report
    profile: Optional[str] = None  # redraw with another device's latency, predicted from this profile


@dataclass
class ExportConfig:
    """`attnas-export storage=... study_name=... pick=knee`"""

    storage: str = MISSING
    study_name: str = MISSING
    pick: str = "knee"  # knee | max_map | METRIC<=VALUE, e.g. latency<=1.05
    min_gain_se: float = 2.0  # consider only candidates beating the plain backbone by this many standard errors
    allow_insignificant: bool = False  # export even when none does (the verdict is written with it)
    out: Optional[str] = None  # None: default_output(storage, study_name, "export"), e.g. runs/<study>/export
    overwrite: bool = False  # replace an export of another spec in `out`
    model: bool = False  # also write state_dict, TorchScript and ONNX (when onnx is installed)
    weights: Optional[str] = None  # the model.pt attnas-train wrote for the picked architecture
    untrained: bool = False  # with model=true and no weights: export random weights, marked untrained
    profile: Optional[str] = None  # pick by another device's latency, predicted from this profile
    input_size: list[int] = field(default_factory=lambda: list(INPUT_SIZE))


def default_output(storage: str, study_name: str, kind: str) -> str:
    """Where a study's reports and exports go unless told: beside a file storage, in the study's
    own folder (`runs/<study>/study.db` -> `runs/<study>/report`) or, when the file holds other
    studies too, under their name (`shared/all.db` -> `shared/reports/<study>`); for a server,
    `runs/<study>/<kind>`."""
    for prefix in ("sqlite:///", "journal:"):
        if storage.startswith(prefix):
            folder = Path(storage.removeprefix(prefix)).parent
            return str(folder / kind if folder.name == study_name else folder / f"{kind}s" / study_name)
    return str(Path("runs") / study_name / kind)


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
    resume: bool = True  # keep what a killed run measured
    progress: bool = True


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
    OmegaConf.register_new_resolver("attnas.data_tag", lambda *, _root_: data_tag(_root_.dataset), replace=True)
    store = ConfigStore.instance()
    store.store(name="search_schema", node=SearchConfig)
    store.store(name="report_schema", node=ReportConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="profile_schema", node=ProfileConfig)
    store.store(group="space", name="base_space", node=SpaceConfig)
    store.store(group="device", name="base_device", node=DeviceConfig)
    for name, entry in DATASETS.items():  # `name` set: conf/dataset/<name>.yaml sets only what differs
        store.store(group="dataset", name=f"base_{name}", node=entry.config_class(name=name))
    for kind, evaluator in EVALUATORS.items():
        store.store(group="evaluator", name=f"base_{kind}", node=evaluator.config_class)
    for name, (schema, _) in SAMPLERS.items():
        store.store(group="sampler", name=f"base_{name}", node=schema)
