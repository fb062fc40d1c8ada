"""Registries: the one place each kind of extension is listed (activations, costs,
initialisations, optimizers, backends).

A :class:`Registry` maps names to entries that carry everything about themselves, in the
manner of scikit-learn's ``ACTIVATIONS`` and Keras's ``ALL_OBJECTS``: every other part of
portamlp reads the registry when it needs the names (the options' valid values, the command
line's choices, the README's table, model files), so adding an entry makes it work everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from .checks import check_choice

__all__ = ["Registry"]



class Named(Protocol):
    """An entry: anything with a name."""

    @property
    def name(self) -> str: ...


_E = TypeVar("_E", bound=Named)


class Registry(dict[str, _E], Generic[_E]):
    """An ordered mapping ``name -> entry`` of one kind of extension.

    It is a dict (``registry["relu"]``, ``"relu" in registry``, ``list(registry)``), plus
    :meth:`lookup`, which refuses an unknown name with the valid ones and a suggestion, and
    :meth:`register` / :meth:`added` to add entries (``added`` for a ``with`` block: the tests
    add entries that way and leave the registry as they found it).

    Parameters
    ----------
    kind : str
        What the entries are, as the options name them ("activation", "optimizer", ...).
    entries : iterable
        The entries it starts with.
    check : callable, optional
        ``check(entry)`` raises TypeError or ValueError, naming what is wrong, for an entry
        that could not work; :meth:`register` calls it for every entry added later.
    """

    def __init__(self, kind: str, entries: Any = (),
                 check: Callable[[Any], None] | None = None):
        super().__init__()
        self.kind = kind
        self.check: Callable[[Any], None] | None = None
        for entry in entries:
            self.register(entry)
        self.check = check

    def register(self, entry: _E, *, name: str | None = None) -> _E:
        """Add ``entry`` under ``name`` (default: ``entry.name``); returns the entry."""
        key = name if name is not None else entry.name
        an = "an" if self.kind[:1] in "aeiou" else "a"
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{an} {self.kind} name must be an identifier such as 'relu', "
                             f"got {key!r}")
        if key in self:
            raise ValueError(f"{an} {self.kind} named {key!r} is already registered")
        if self.check is not None:
            self.check(entry)
        self[key] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove the entry called ``name``."""
        del self[name]

    @contextlib.contextmanager
    def added(self, entry: _E, *, name: str | None = None) -> Iterator[_E]:
        """Register ``entry`` for the duration of a ``with`` block."""
        key = name if name is not None else entry.name
        self.register(entry, name=key)
        try:
            yield entry
        finally:
            self.pop(key, None)

    def lookup(self, name: Any) -> _E:
        """The entry called exactly ``name``; a ValueError names the valid ones and a near
        miss (``"ReLU"`` -> did you mean 'relu'?)."""
        return self[check_choice(self.kind, name, self)]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self)})"
