"""What schema types promise the fast execution path (`gateway.graphql.execution`), declared here.

The schema declares; the execution path reads these registries, and never the reverse: a
type module imports this one, not the executor.

- `frozen_snapshots(*classes)`: instances are never written to once built and may be
  shared by any number of requests (the objects built once per stored document), so the
  executor may remember on each what its plain fields completed to.
- `strings_unchanged(coerce)`: a custom scalar's output coercion returns a `str` unchanged,
  so the executor completes such values inline without calling it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = ["FROZEN_SNAPSHOTS", "STRINGS_UNCHANGED", "frozen_snapshots", "strings_unchanged"]

FROZEN_SNAPSHOTS: Final[set[type]] = set()
STRINGS_UNCHANGED: Final[set[Callable[[Any], Any]]] = set()
_C = TypeVar("_C", bound=Callable[[Any], Any])


def frozen_snapshots(*classes: type) -> None:
    """Declare that instances of `classes` are never written to once built, and may be
    shared by any number of requests: the fast path may then remember, on each, what its
    plain fields completed to."""
    FROZEN_SNAPSHOTS.update(classes)


def strings_unchanged(coerce_output_value: _C) -> _C:
    """Declare that a custom scalar's output coercion returns any `str` value unchanged (and
    so need not be called for one); the declared function is returned as it is."""
    STRINGS_UNCHANGED.add(coerce_output_value)
    return coerce_output_value
