"""The layering the README's ARCHITECTURE section states, held by a test: every `import` of every
installed module (function-level ones too) must point at its own layer or one below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"space": "attnas.space", "models": "attnas.models", "evaluators": "attnas.evaluators",
           "search": "attnas.search", "conf": "attnas.conf"}

#: layer -> the layers it may import (besides itself); most specific prefix wins
ALLOWED: dict[str, set[str]] = {
    "attnas.models.registry": set(),
    "attnas.models.blocks": {"attnas.models.registry"},
    "attnas.models.backbones": {"attnas.models.registry"},
    "attnas.space": {"attnas.models.blocks", "attnas.models.backbones"},
    "attnas.models": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space"},
    "attnas.evaluators.reid": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models",
                               "attnas.evaluators.core"},
    "attnas.evaluators.latency": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models",
                                  "attnas.evaluators.core"},
    "attnas.evaluators.core": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models"},
    "attnas.evaluators": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models",
                          "attnas.evaluators.core", "attnas.evaluators.reid", "attnas.evaluators.latency"},
    "attnas.search": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models",
                      "attnas.evaluators", "attnas.evaluators.core", "attnas.evaluators.reid", "attnas.evaluators.latency"},
    "attnas.search.analysis": {"attnas.models.blocks", "attnas.models.backbones", "attnas.space", "attnas.models",
                               "attnas.evaluators", "attnas.evaluators.core", "attnas.evaluators.reid",
                               "attnas.evaluators.latency", "attnas.search"},
    "attnas.search.apps": set(),  # the apps may import anything (checked separately: nothing imports them)
    "attnas.conf": set(),
}
#: modules of `evaluators/` that everything in it builds on (base classes, registries of metrics, files, devices)
EVALUATOR_CORE = {"attnas.evaluators.base", "attnas.evaluators.metric_registry", "attnas.evaluators.artefacts",
                  "attnas.evaluators.device", "attnas.evaluators.device_lock", "attnas.evaluators.progress"}


def layer(module: str) -> str | None:
    if module in EVALUATOR_CORE:
        return "attnas.evaluators.core"
    matches = [name for name in ALLOWED if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *[p for p in parts if p != "__init__"]])
            found.append((name, path))
    return found


def imports_of(name: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found += [f"{base}.{alias.name}" if base in ("attnas.evaluators", "attnas.search") else base for alias in node.names]
    return [f for f in found if f.startswith("attnas.")]


@pytest.mark.parametrize("name,path", modules(), ids=[name for name, _ in modules()])
def test_imports_follow_the_layers(name, path):
    own = layer(name)
    assert own is not None, f"{name} is in no layer of tests/test_architecture.py: add it"
    if own == "attnas.search.apps":
        return
    for imported in imports_of(name, path):
        target = layer(imported)
        if target is None or target == own or target == "attnas.models.registry":
            continue
        assert target in ALLOWED[own], f"{name} imports {imported} ({target}); {own} may import {sorted(ALLOWED[own])}"


def test_nothing_but_the_apps_imports_the_apps():
    for name, path in modules():
        if layer(name) == "attnas.search.apps":
            continue
        offenders = [i for i in imports_of(name, path) if layer(i) == "attnas.search.apps"]
        assert not offenders, f"{name} imports {offenders}: the apps sit on top, nothing below imports them"


def test_no_module_is_over_300_lines():
    long = {str(path.relative_to(ROOT)): n for _, path in modules() if (n := len(path.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines (split them by concept): {long}"
