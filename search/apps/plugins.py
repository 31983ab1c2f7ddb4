"""Plugins: a user's own modules that register entries (a block, a backbone family, a metric, a
latency source, an evaluator, a sampler, a data set) when imported, without editing attnas:

    attnas-search plugins=[my_blocks] space.blocks=[se,my_gate]

The modules named by `plugins` on the command line are imported before the config is composed
and checked, so what they register is a valid config value (`space.blocks=[my_gate]`,
`sampler=my_sampler`, `space=<their backbone>`); worker processes get the same command line. A
plugin is any importable module: a package installed in the environment, or a file found through
PYTHONPATH (`PYTHONPATH=. attnas-search plugins=[my_blocks]`).
"""

from __future__ import annotations

import importlib
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from attnas.search.config import ConfigError


def plugin_modules(args: list[str]) -> list[str]:
    """The modules `plugins=[...]` names on a command line (none when it names none or does not
    parse: composing the command line reports that)."""
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception:  # noqa: BLE001 - a malformed command line: precheck reports it in one line
        return []
    modules: list[str] = []
    for override in overrides:
        if override.key_or_group == "plugins" and not override.is_sweep_override():
            value: Any = override.value()
            modules += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    return modules


def load_plugins(args: list[str]) -> list[str]:
    """Import the plugins a command line names; a module that cannot be imported is refused in one line."""
    modules = plugin_modules(args)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - anything the plugin raises: one line naming it
            raise ConfigError(f"plugin {name!r} cannot be imported: {type(error).__name__}: {error}; a plugin is a "
                              f"module on the Python path (an installed package, or PYTHONPATH=. for a file here)") from None
    return modules
