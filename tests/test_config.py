"""The config system: one default per knob, schemas for every group, typed results."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from hydra.core.config_store import ConfigStore

from attnas.search.apps.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
#: keys that say which option a file is; stating them even when they equal the default is clearer
IDENTITY = ("name", "type", "backbone")


def _schema(group: str, name: str):
    register_configs()
    node = ConfigStore.instance().repo[group][f"{name}.yaml"].node
    return node._metadata.object_type


@pytest.mark.parametrize("path", sorted(p for p in CONF.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_group_yamls_extend_a_schema_and_set_only_what_differs_from_its_defaults(path):
    data = yaml.safe_load(path.read_text()) or {}
    bases = [d for d in data.get("defaults", []) if isinstance(d, str) and d.startswith("base_")]
    assert len(bases) == 1, f"{path.name} must extend exactly one schema (defaults: [base_..., _self_])"
    schema = _schema(path.parent.name, bases[0])
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in data.items():
        if key in ("defaults", *IDENTITY):
            continue
        assert key in fields, f"{path.name}: {key!r} is not a field of {schema.__name__}"
        field = fields[key]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(default):
            for sub, sub_value in value.items():
                assert getattr(default, sub) != sub_value, f"{path.name}: {key}.{sub}={sub_value!r} repeats the default"
        else:
            assert default != value, f"{path.name}: {key}={value!r} repeats the default of {schema.__name__}"


def test_every_evaluator_type_and_sampler_has_a_schema_in_the_store():
    from attnas.evaluators import EVALUATORS
    from attnas.search.samplers import SAMPLERS

    register_configs()
    repo = ConfigStore.instance().repo
    assert {f"base_{k}.yaml" for k in EVALUATORS} <= set(repo["evaluator"])
    assert {f"base_{k}.yaml" for k in SAMPLERS} <= set(repo["sampler"])
