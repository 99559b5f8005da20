"""Fields whose value is one load from the request's loaders, declared rather than written.

`Talk.customer` is `loaders.customer.load(int(talk.customer_id))`, null when the id is.
Written as a resolver, graphql-core runs it once per talk of a page, each time with its own
resolve info, coroutine and task, and awaits a hundred results for one batch. Declared with
`loaded_by`, the same resolver is generated from the declaration, and the executor
(gateway/execution.py) can read the declaration instead: it loads the keys of a whole list,
awaits the batch once and completes every value without a task each. Both ways make the same
`load` calls with the same keys, so they give the same answers and the same errors.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

__all__ = ["LoadedBy", "loaded_by", "loaded_by_of"]

_ATTRIBUTE: Final = "__loaded_by__"

R = TypeVar("R", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True, slots=True)
class LoadedBy:
    """The field's value is `info.context.loaders.<loader>.load(int(source.<key>))`, or null
    when `source.<key>` is None."""

    loader: str
    key: str


def loaded_by(loader: str, key: str) -> Callable[[R], R]:
    """Give the decorated stub (`async def customer(self, info: Ctx) -> Customer | None: ...`,
    kept for its name, signature and return type) the resolver the declaration describes."""
    spec = LoadedBy(loader, key)

    def declare(stub: R) -> R:
        async def resolve(self: Any, info: Any) -> Any:
            value = getattr(self, key)
            if value is None:
                return None
            return await getattr(info.context.loaders, loader).load(int(value))

        # The stub's name, annotations and (through __wrapped__) signature, for strawberry.
        functools.update_wrapper(resolve, stub)
        setattr(resolve, _ATTRIBUTE, spec)
        return resolve  # type: ignore[return-value]

    return declare


def loaded_by_of(function: object) -> LoadedBy | None:
    """The declaration behind a resolver made by `loaded_by`, if it is one."""
    spec = getattr(function, _ATTRIBUTE, None)
    return spec if isinstance(spec, LoadedBy) else None
