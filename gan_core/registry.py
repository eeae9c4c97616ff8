"""Name -> builder maps (MODELS, LOSSES, METRICS, DATASETS) instead of class names in strings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A registry was asked for a name it does not hold; the message lists what it holds."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """An ordered map from a short name to an entry, with a one-line description each."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            self._descriptions[name] = description or _first_doc_line(entry)
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def describe(self) -> dict[str, str]:
        return dict(self._descriptions)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


def _first_doc_line(entry: object) -> str:
    doc = getattr(entry, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
