"""A composed config checked against its schemas, and Hydra's and OmegaConf's errors in one line.

Hydra lets `+key=value` through to a structured config (OmegaConf then drops it silently), and
reports a bad override in five to thirty lines. Everything here uses OmegaConf's public API; a
group option that does not exist is found by listing the group's files in `attnas.conf` before
Hydra is asked, rather than by reading Hydra's message.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from attnas.search.config import ConfigError


def group_options(group: str) -> list[str] | None:
    """The options of config group `group`, or None when it is no group: its yaml files
    (`conf/<group>/*.yaml`) and the options stored for registry entries that have none (a
    plugin's sampler, say; `attnas.search.apps.config.register_configs`), schemas excluded."""
    folder = resources.files("attnas.conf") / group
    if not folder.is_dir():
        return None
    files = {entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")}
    store = ConfigStore.instance()
    stored = {name.removesuffix(".yaml") for name in store.list(group)} if group in store.repo else set()
    return sorted(files | {name for name in stored if not name.startswith("base_")})


def check_group_choice(key: str, value: Any) -> None:
    """Refuse `group=option` when the group has no such option, listing the valid ones."""
    options = group_options(key)
    if options is not None and isinstance(value, str) and value not in options:
        raise ConfigError(f"no {key} option {value!r}; valid options: {', '.join(options)}")


def _children(node: DictConfig | ListConfig):
    """(key, child) of a container, skipping missing values and interpolations (not resolved here)."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if not (OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key)):
            yield key, node[key]


def _nested(schema: Any, key: str) -> str:
    """`; did you mean timer.repeats?` when `key` is a field of one of the schema's sub-schemas
    (a latency source's own settings), else ''."""
    # the sub-schemas are read off the defaults (annotations are strings under `from __future__ import annotations`)
    found = [f"{f.name}.{key}" for f in dataclasses.fields(schema) if f.default_factory is not dataclasses.MISSING
             and dataclasses.is_dataclass(default := f.default_factory()) and hasattr(default, key)]
    return f"; did you mean {' or '.join(found)}?" if found else ""


def check_keys(node: Any, path: str = "") -> None:
    """Refuse keys that the node's schema does not have, naming the valid ones."""
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        if dataclasses.is_dataclass(schema):
            valid = [f.name for f in dataclasses.fields(schema)]
            for key in node.keys():
                if key not in valid:
                    raise ConfigError(f"unknown key {key!r} in {path or 'the config'}; valid keys: {', '.join(valid)}"
                                      f"{_nested(schema, key)}")
    if isinstance(node, (DictConfig, ListConfig)):
        for key, child in _children(node):
            check_keys(child, f"{path}[{key}]" if isinstance(node, ListConfig) else f"{path}.{key}" if path else str(key))


def missing_keys(cfg: DictConfig) -> list[str]:
    """Mandatory values (`???`) left unset."""
    return sorted(OmegaConf.missing_keys(cfg))


def typed(cfg: DictConfig) -> Any:
    """The composed config as dataclasses, after checking every key against its schema."""
    check_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except Exception as error:  # noqa: BLE001 - OmegaConf's validation errors: one line, with the key
        raise ConfigError(describe_config_error(error)) from None


def describe_config_error(error: BaseException) -> str:
    """One line from Hydra's and OmegaConf's multi-line messages (OmegaConf's exceptions carry the
    key and the schema as attributes)."""
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
        return f"unknown key {key!r} in {parent}; valid keys: {valid}{_nested(schema, str(key))}"
    return f"{full_key}: {first}" if full_key else first
