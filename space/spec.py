"""`ArchSpec`: which attention block sits at which residual block of which backbone.

A spec is plain, immutable data. Its canonical text form (`resnet50:layer2.3=se@pre,layer3.5=cnl`)
is its identity: equality, hashing, the digest used in file names and the key under which
search results are cached all derive from it, so two specs that build the same network are
the same spec however they were written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from attnas.space.backbones import BACKBONE_STAGES, check_backbone, position_key, positions
from attnas.space.blocks import BLOCK_TYPES, DEFAULT_PLACEMENT, PLACEMENTS, check_block, check_placement

#: sections of an exported architecture file that are not part of the spec itself
EXPORT_SECTIONS = ("metrics", "provenance", "status")

_ENTRY = re.compile(r"^(?P<pos>[^=@\s]+)=(?P<block>[^=@\s]+)(?:@(?P<placement>[^=@\s]+))?$")


@dataclass(frozen=True)
class BlockChoice:
    """One inserted block: its type and where relative to the residual add."""

    block: str
    placement: str = DEFAULT_PLACEMENT

    def __post_init__(self) -> None:
        check_block(self.block)
        check_placement(self.placement)

    def __str__(self) -> str:
        if self.placement == DEFAULT_PLACEMENT:
            return self.block
        return f"{self.block}@{self.placement}"


@dataclass(frozen=True, eq=False)
class ArchSpec:
    """A backbone plus the attention blocks inserted into it, keyed by torchvision position."""

    backbone: str = "resnet50"
    blocks: Mapping[str, BlockChoice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_backbone(self.backbone)
        valid = positions(self.backbone)
        normalised: dict[str, BlockChoice] = {}
        for position, choice in self.blocks.items():
            if position not in valid:
                raise ValueError(
                    f"position {position!r} does not exist in {self.backbone}; valid positions: "
                    f"{_describe_positions(self.backbone)}"
                )
            if isinstance(choice, str):
                choice = BlockChoice(choice)
            elif not isinstance(choice, BlockChoice):
                raise TypeError(f"block at {position!r} must be a BlockChoice or a block name, got {choice!r}")
            normalised[position] = choice
        ordered = dict(sorted(normalised.items(), key=lambda item: position_key(item[0])))
        object.__setattr__(self, "blocks", _FrozenDict(ordered))

    # -- text form -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "ArchSpec":
        """Read the canonical text form; also accepts unsorted entries and explicit `@post`."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty architecture spec; expected e.g. 'resnet50' or 'resnet50:layer3.5=cnl'")
        head, sep, tail = text.strip().partition(":")
        backbone = head.strip()
        check_backbone(backbone)
        if sep and not tail.strip():
            raise ValueError(f"spec {text!r} has ':' but no blocks after it; write {backbone!r} for no blocks")
        blocks: dict[str, BlockChoice] = {}
        for token in filter(None, (t.strip() for t in tail.split(","))) if sep else ():
            match = _ENTRY.match(token)
            if match is None:
                raise ValueError(
                    f"malformed entry {token!r} in spec {text!r}; expected POSITION=BLOCK[@PLACEMENT], "
                    f"e.g. 'layer3.5=cnl' or 'layer2.3=se@pre'"
                )
            position = match["pos"]
            if position in blocks:
                raise ValueError(f"duplicate position {position!r} in spec {text!r}; a position holds one block")
            blocks[position] = BlockChoice(match["block"], match["placement"] or DEFAULT_PLACEMENT)
        return cls(backbone, blocks)

    def __str__(self) -> str:
        if not self.blocks:
            return self.backbone
        return self.backbone + ":" + ",".join(f"{pos}={choice}" for pos, choice in self.blocks.items())

    def __repr__(self) -> str:
        return f"ArchSpec.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArchSpec) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def digest(self) -> str:
        """Short, stable (across processes and Python versions) name for files and caches."""
        return hashlib.sha1(str(self).encode()).hexdigest()[:12]

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    # -- dict / JSON / YAML ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "blocks": [
                {"position": pos, "block": choice.block, "placement": choice.placement}
                for pos, choice in self.blocks.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchSpec":
        unknown = set(data) - {"backbone", "blocks", "spec"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in spec dict; valid keys: backbone, blocks")
        if "backbone" not in data:
            raise ValueError("spec dict has no 'backbone'; e.g. {'backbone': 'resnet50', 'blocks': []}")
        blocks: dict[str, BlockChoice] = {}
        for entry in data.get("blocks") or []:
            if not isinstance(entry, Mapping) or "position" not in entry or "block" not in entry:
                raise ValueError(
                    f"block entry {entry!r} needs 'position' and 'block' (and optionally 'placement')"
                )
            position = entry["position"]
            if position in blocks:
                raise ValueError(f"duplicate position {position!r} in spec dict; a position holds one block")
            blocks[position] = BlockChoice(entry["block"], entry.get("placement", DEFAULT_PLACEMENT))
        return cls(data["backbone"], blocks)

    def to_json(self) -> str:
        return json.dumps({"spec": str(self), **self.to_dict()}, indent=2)

    def save(self, path: str | Path) -> Path:
        """Write JSON or YAML by the file's suffix; the canonical string rides along for humans."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(self.to_json() + "\n")
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump({"spec": str(self), **self.to_dict()}, sort_keys=False))
        else:
            raise ValueError(f"cannot tell the format of {str(path)!r}; use a .json, .yaml or .yml file")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ArchSpec":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no spec file at {str(path)!r}")
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        else:
            raise ValueError(f"cannot tell the format of {str(path)!r}; use a .json, .yaml or .yml file")
        if isinstance(data, str):
            return cls.parse(data)
        if not isinstance(data, dict):
            raise ValueError(f"{str(path)!r} holds no spec: expected a mapping with 'backbone' and 'blocks'")
        # an exported architecture (attnas-export) carries its metrics and provenance beside the spec
        data = {k: v for k, v in data.items() if k not in EXPORT_SECTIONS}
        spec = cls.from_dict(data)
        if "spec" in data and ArchSpec.parse(data["spec"]) != spec:
            raise ValueError(
                f"{str(path)!r} is inconsistent: its 'spec' string {data['spec']!r} differs from its blocks "
                f"({spec}); fix or delete one of them"
            )
        return spec


class _FrozenDict(dict):
    """A dict that refuses mutation, so a spec cannot change under a cache key."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("ArchSpec blocks are immutable; build a new spec instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


def _describe_positions(backbone: str) -> str:
    stages = BACKBONE_STAGES[backbone]
    return ", ".join(f"layer{s + 1}.0-{n - 1}" for s, n in enumerate(stages))


def as_spec(value: "ArchSpec | str | Mapping[str, Any]") -> ArchSpec:
    """Accept what users pass around: a spec, its text form or its dict form."""
    if isinstance(value, ArchSpec):
        return value
    if isinstance(value, str):
        return ArchSpec.parse(value)
    if isinstance(value, Mapping):
        return ArchSpec.from_dict(value)
    raise TypeError(f"cannot read an architecture spec from {type(value).__name__}: {value!r}")


__all__ = ["ArchSpec", "BlockChoice", "as_spec", "BLOCK_TYPES", "PLACEMENTS"]


