"""`Registry`: a name -> entry table, the one kind every extension point of attnas uses (blocks,
backbone families, metrics, latency sources, evaluators, samplers, data sets).

As torchvision's `register_model`: registering a name twice is an error (a plugin cannot silently
replace a built-in), and an unknown name is refused in one line listing the valid ones. It lives
at the bottom of the package graph (it imports nothing of attnas), so every layer can use it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A dict of `kind` entries by name, in registration order (the display order of reports)."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None,
                 check: Callable[[str, T], None] | None = None, valid: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.valid = valid or f"{kind}s"  # how an error names the valid entries: "valid blocks: ..."
        self._check = check
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; refused when the name is taken or the entry fails the check."""
        if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
            raise ValueError(f"{self.kind} name {name!r} must be a non-empty identifier (letters, digits, _)")
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered already ({self[name]!r}); choose another name")
        if self._check is not None:
            self._check(name, entry)
        super().__setitem__(name, entry)
        return entry

    def __setitem__(self, name: str, entry: T) -> None:
        self.register(name, entry)

    def get_entry(self, name: str) -> T:
        """The entry named `name`, or a one-line error naming the valid names."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.valid}: {', '.join(self) or 'none'}")
        return self[name]

    @contextlib.contextmanager
    def temporarily(self, name: str, entry: T) -> Iterator[T]:
        """`entry` registered for the block only (tests, notebooks trying an extension)."""
        self.register(name, entry)
        try:
            yield entry
        finally:
            super().pop(name, None)
