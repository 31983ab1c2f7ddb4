"""The apps' typed configs (Hydra structured configs) and their validation.

Every config group has a schema: the dataclass of the package that owns the knob (a space's in
`attnas.space`, an evaluator's and a dataset's in `attnas.evaluators`, a sampler's in
`attnas.search.samplers`). `register_configs()` puts them in Hydra's ConfigStore as
`<group>/base_<kind>`, and each yaml in `conf/<group>/` extends one of them, setting only what
that option changes. After composition, `typed()` checks every key against its schema (Hydra
lets `+key=value` through, and OmegaConf would drop it silently) and returns dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from attnas.evaluators import EVALUATORS
from attnas.evaluators.config import (
    CUHK03Config,
    DatasetConfig,
    DeviceConfig,
    SplitDatasetConfig,
    SyntheticDatasetConfig,
)
from attnas.search.config import ConfigError, SearchConfig
from attnas.search.samplers import SAMPLERS
from attnas.space import SpaceConfig


@dataclass
class ReportConfig:
    """`attnas-report storage=... study_name=...`"""

    storage: str = MISSING
    study_name: str = MISSING
    out: Optional[str] = None  # None: next to the storage, <folder of the .db>/reports/<study_name>
    profile: Optional[str] = None  # redraw with another device's latency, predicted from this profile


@dataclass
class ExportConfig:
    """`attnas-export storage=... study_name=... pick=knee`"""

    storage: str = MISSING
    study_name: str = MISSING
    pick: str = "knee"  # knee | max_map | METRIC<=VALUE, e.g. latency<=1.05
    min_gain_se: float = 2.0  # consider only candidates beating the plain backbone by this many standard errors
    allow_insignificant: bool = False  # export even when none does (the verdict is written with it)
    out: Optional[str] = None  # None: next to the storage, <folder of the .db>/exports/<study_name>
    overwrite: bool = False  # replace an export of another spec in `out`
    model: bool = False  # also write state_dict, TorchScript and ONNX (when onnx is installed)
    weights: Optional[str] = None  # the model.pt attnas-train wrote for the picked architecture
    untrained: bool = False  # with model=true and no weights: export random weights, marked untrained
    profile: Optional[str] = None  # pick by another device's latency, predicted from this profile
    input_size: list[int] = field(default_factory=lambda: [256, 128])


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
    input_size: list[int] = field(default_factory=lambda: [256, 128])
    warmup: int = 5
    repeats: int = 30  # timed (single-block, plain) pairs per entry
    resume: bool = True  # keep what a killed run measured
    progress: bool = True


#: schemas of the dataset configs by kind (`conf/dataset/*.yaml` extend one of them)
DATASET_SCHEMAS = {"dataset": DatasetConfig, "split_dataset": SplitDatasetConfig, "cuhk03": CUHK03Config,
                   "synthetic": SyntheticDatasetConfig}


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
    store = ConfigStore.instance()
    store.store(name="search_schema", node=SearchConfig)
    store.store(name="report_schema", node=ReportConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="profile_schema", node=ProfileConfig)
    store.store(group="space", name="base_space", node=SpaceConfig)
    store.store(group="device", name="base_device", node=DeviceConfig)
    for kind, schema in DATASET_SCHEMAS.items():
        store.store(group="dataset", name=f"base_{kind}", node=schema)
    for kind, evaluator in EVALUATORS.items():
        store.store(group="evaluator", name=f"base_{kind}", node=evaluator.config_class)
    for name, (schema, _) in SAMPLERS.items():
        store.store(group="sampler", name=f"base_{name}", node=schema)


def check_keys(node: Any, path: str = "") -> None:
    """Refuse keys that the node's schema does not have, naming the valid ones."""
    if isinstance(node, (DictConfig, ListConfig)) and (node._is_none() or node._is_missing() or node._is_interpolation()):
        return
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        if dataclasses.is_dataclass(schema):
            valid = [f.name for f in dataclasses.fields(schema)]
            for key in node.keys():
                if key not in valid:
                    where = path or "the config"
                    raise ConfigError(f"unknown key {key!r} in {where}; valid keys: {', '.join(valid)}")
        for key in node.keys():
            check_keys(node._get_node(key), f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for index, item in enumerate(node._iter_ex(resolve=False)):
            check_keys(item, f"{path}[{index}]")


def missing_keys(node: Any, path: str = "") -> list[str]:
    """Mandatory values (`???`) left unset, without resolving interpolations."""
    found = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            where = f"{path}.{key}" if path else str(key)
            found += [where] if child._is_missing() else missing_keys(child, where)
    return found


def typed(cfg: DictConfig) -> Any:
    """The composed config as dataclasses, after checking every key against its schema."""
    check_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except Exception as error:  # noqa: BLE001 - OmegaConf's validation errors: one line, with the key
        raise ConfigError(describe_config_error(error)) from None


def describe_config_error(error: BaseException) -> str:
    """One line from Hydra's and OmegaConf's multi-line messages (the cause carries the key)."""
    cause = error
    while cause.__cause__ is not None and not hasattr(cause, "full_key"):
        cause = cause.__cause__
    full_key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if "not in" in first and dataclasses.is_dataclass(schema):
        key = getattr(cause, "key", full_key)
        parent = full_key.rsplit(".", 1)[0] if full_key and "." in full_key else "the config"
        valid = ", ".join(f.name for f in dataclasses.fields(schema))
        return f"unknown key {key!r} in {parent}; valid keys: {valid}"
    missing_option = re.search(r"Could not find '([^/']+)/([^']+)'", str(error))
    if missing_option:  # a group option that does not exist: list the group's options (schemas aside)
        group, option = missing_option.groups()
        listed = str(error).split("Available options in", 1)[-1].split("Config search path", 1)[0]
        options = [line.strip() for line in listed.splitlines()[1:] if line.strip() and not line.strip().startswith("base_")]
        return f"no {group} option {option!r}; valid options: {', '.join(options)}"
    return f"{full_key}: {first}" if full_key else first
