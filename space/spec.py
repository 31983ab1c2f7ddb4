"""`ArchSpec`: which attention block sits at which block of which backbone.

A spec is plain, immutable data. Its canonical text form
(`resnet50:layer2.3=se@pre,layer3.5=cnl(r=8)`) is its identity: equality, hashing, the digest used
in file names and the key under which search results are cached all derive from it, so two specs
that build the same network are the same spec however they were written. Canonical means:
entries in network order, the default placement (`post`) and default block options omitted,
options sorted by key, and `pre` written as `post` at a block without a residual add (there
both are the same function: MobileNetV3's downsampling blocks).

Backbones and their positions come from the adapter registry (`attnas.models.backbones`), block
names and options from the block registry (`attnas.models.blocks`): a spec is valid exactly
when `build_model` can build it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from attnas.models.backbones import BackboneLayout, backbone_family, layout
from attnas.models.blocks import check_block, check_fits, check_options

#: `post`: after the residual add, between two blocks (how NL blocks are inserted in AGW and how
#: the paper inserts its blocks); `pre`: inside the residual branch before the add (SE-Net).
PLACEMENTS: tuple[str, ...] = ("post", "pre")
#: paper.md: the paper inserts blocks after the block, so `post` is omitted from the canonical text
DEFAULT_PLACEMENT = "post"

#: sections of an exported architecture file that are not part of the spec itself
EXPORT_SECTIONS = ("metrics", "provenance", "status", "verdict", "uncertainty", "embedding", "weights", "trained")

_CHOICE = re.compile(r"^(?P<block>[A-Za-z_][\w]*)(?:\((?P<options>[^()]*)\))?(?:@(?P<placement>\w+))?$")


def check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; valid placements: {', '.join(PLACEMENTS)}")


@dataclass(frozen=True)
class BlockChoice:
    """One inserted block: its type, its options (non-default only) and where relative to the
    residual add."""

    block: str
    placement: str = DEFAULT_PLACEMENT
    options: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        check_block(self.block)
        check_placement(self.placement)
        options = dict(self.options) if not isinstance(self.options, Mapping) else self.options
        object.__setattr__(self, "options", tuple(check_options(self.block, dict(options)).items()))

    @classmethod
    def parse(cls, text: str) -> "BlockChoice":
        """`cnl`, `cnl(r=8)`, `se@pre`, `cbam(k=3,r=8)@pre`."""
        match = _CHOICE.match(text.strip())
        if match is None:
            raise ValueError(f"malformed block {text!r}; expected BLOCK[(KEY=VALUE,...)][@PLACEMENT], e.g. 'cnl(r=8)' or 'se@pre'")
        options: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in (match["options"] or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"malformed option {item!r} in block {text!r}; expected KEY=VALUE, e.g. r=8")
            if key.strip() in options:
                raise ValueError(f"option {key.strip()!r} given twice in block {text!r}")
            options[key.strip()] = value
        return cls(match["block"], match["placement"] or DEFAULT_PLACEMENT, tuple(options.items()))

    @property
    def variant(self) -> str:
        """Block type with its options (`cnl(r=8)`), without placement: a choice of the space."""
        if not self.options:
            return self.block
        return f"{self.block}({','.join(f'{k}={v}' for k, v in self.options)})"

    @property
    def kwargs(self) -> dict[str, int]:
        return dict(self.options)

    def __str__(self) -> str:
        if self.placement == DEFAULT_PLACEMENT:
            return self.variant
        return f"{self.variant}@{self.placement}"


def choice_at(where: BackboneLayout, position: str, choice: BlockChoice) -> BlockChoice:
    """`choice` as a spec holds it at `position`: `pre` and `post` differ only where the block
    adds its input (the adapter declares `residual`), elsewhere `pre` is written `post`."""
    if choice.placement == DEFAULT_PLACEMENT or where.position(position).residual:
        return choice
    return BlockChoice(choice.block, DEFAULT_PLACEMENT, choice.options)


def _split_entries(text: str) -> list[str]:
    """Split on commas outside parentheses (`layer1.0=cbam(k=3,r=8),layer2.0=se`)."""
    entries, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            entries.append(text[start:i])
            start = i + 1
    entries.append(text[start:])
    return [e.strip() for e in entries if e.strip()]


@dataclass(frozen=True, eq=False)
class ArchSpec:
    """A backbone plus the attention blocks inserted into it, keyed by torchvision position."""

    backbone: str = "resnet50"
    blocks: Mapping[str, BlockChoice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        backbone_family(self.backbone)  # unknown backbone: error listing the valid ones
        where = layout(self.backbone)
        normalised: dict[str, BlockChoice] = {}
        for position, choice in self.blocks.items():
            where.key(position)  # unknown position: error listing the valid ones
            if isinstance(choice, str):
                choice = BlockChoice.parse(choice)
            elif not isinstance(choice, BlockChoice):
                raise TypeError(f"block at {position!r} must be a BlockChoice or a block text, got {choice!r}")
            check_fits(choice.block, choice.options, where.channels_at(position), position)
            normalised[position] = choice_at(where, position, choice)
        ordered = dict(sorted(normalised.items(), key=lambda item: where.key(item[0])))
        object.__setattr__(self, "blocks", _FrozenDict(ordered))

    # -- text form -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "ArchSpec":
        """Read the canonical text form; also accepts unsorted entries, explicit `@post` and
        default options."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty architecture spec; expected e.g. 'resnet50' or 'resnet50:layer3.5=cnl'")
        head, sep, tail = text.strip().partition(":")
        backbone = head.strip()
        backbone_family(backbone)
        if sep and not tail.strip():
            raise ValueError(f"spec {text!r} has ':' but no blocks after it; write {backbone!r} for no blocks")
        blocks: dict[str, BlockChoice] = {}
        for token in _split_entries(tail) if sep else ():
            position, eq, choice = token.partition("=")
            if not eq or not position.strip() or not choice.strip():
                raise ValueError(
                    f"malformed entry {token!r} in spec {text!r}; expected POSITION=BLOCK[(OPTIONS)][@PLACEMENT], "
                    f"e.g. 'layer3.5=cnl', 'layer4.2=cnl(r=8)' or 'layer2.3=se@pre'"
                )
            position = position.strip()
            if position in blocks:
                raise ValueError(f"duplicate position {position!r} in spec {text!r}; a position holds one block")
            blocks[position] = BlockChoice.parse(choice)
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

    def __reduce__(self):
        # pickle / copy.deepcopy (EMA, SWA, mean-teacher copies of a model carry its spec)
        return ArchSpec.parse, (str(self),)

    @property
    def digest(self) -> str:
        """Short, stable (across processes and Python versions) name for files and caches."""
        return hashlib.sha1(str(self).encode()).hexdigest()[:12]

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def stages(self) -> dict[str, str]:
        """Position -> the name of its stage (`layer3.5` -> `layer3`), from the backbone's layout."""
        where = layout(self.backbone)
        return {pos: where.stage_of(pos).name for pos in self.blocks}

    # -- dict / JSON / YAML ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        entries = []
        for pos, choice in self.blocks.items():
            entry: dict[str, Any] = {"position": pos, "block": choice.block, "placement": choice.placement}
            if choice.options:
                entry["options"] = dict(choice.options)
            entries.append(entry)
        return {"backbone": self.backbone, "blocks": entries}

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
                    f"block entry {entry!r} needs 'position' and 'block' (and optionally 'placement', 'options')"
                )
            position = entry["position"]
            if position in blocks:
                raise ValueError(f"duplicate position {position!r} in spec dict; a position holds one block")
            options = tuple((entry.get("options") or {}).items())
            blocks[position] = BlockChoice(entry["block"], entry.get("placement", DEFAULT_PLACEMENT), options)
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

    def __reduce__(self):
        return _FrozenDict, (dict(self),)


def as_spec(value: "ArchSpec | str | Mapping[str, Any]") -> ArchSpec:
    """Accept what users pass around: a spec, its text form or its dict form."""
    if isinstance(value, ArchSpec):
        return value
    if isinstance(value, str):
        return ArchSpec.parse(value)
    if isinstance(value, Mapping):
        return ArchSpec.from_dict(value)
    raise TypeError(f"cannot read an architecture spec from {type(value).__name__}: {value!r}")


__all__ = ["ArchSpec", "BlockChoice", "as_spec", "choice_at", "PLACEMENTS", "DEFAULT_PLACEMENT", "check_placement"]
