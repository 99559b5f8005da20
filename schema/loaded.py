"""Fields whose value is one load from the request's loaders, declared rather than written.

`Talk.customer` is `loaders.customer.load(int(talk.customer_id))`, null when the id is.
Written as a resolver, graphql-core runs it once per talk of a page, each time with its own
resolve info, coroutine and task, and awaits a hundred results for one batch. Declared with
`loaded_by`, the same resolver is generated from the declaration, and the executor
(gateway/graphql/execution/) can read the declaration instead: it loads the keys of a whole list,
awaits the batch once and completes every value without a task each. Both ways make the same
`load` calls with the same keys, so they give the same answers and the same errors.

A field with arguments (`Talk.histories(first, after)`) declares how its key is made of the
source's key and them (`keyed`); its value may be of any type the executor completes (a
connection, a list): such fields are loaded per object, not deferred to their list (see
gateway/graphql/execution/), which spares graphql-core's and strawberry's resolver machinery.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

__all__ = ["LoadedBy", "loaded_by", "loaded_by_of"]

_ATTRIBUTE: Final = "__loaded_by__"

R = TypeVar("R", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True, slots=True)
class LoadedBy:
    """The field's value is `info.context.loaders.<loader>.load(int(source.<key>))`, or null
    when `source.<key>` is None; with `keyed`, the key loaded is `keyed(int(source.<key>),
    **arguments)`, the field's arguments by their Python names."""

    loader: str
    key: str
    keyed: Callable[..., Hashable] | None = None

    def key_of(self, source: Any, arguments: Mapping[str, Any]) -> Hashable | None:
        """The key `source`'s value is loaded by (None: the value is null)."""
        value = getattr(source, self.key)
        if value is None:
            return None
        if self.keyed is None:
            return int(value)
        return self.keyed(int(value), **arguments)


def loaded_by(
    loader: str, key: str, *, keyed: Callable[..., Hashable] | None = None
) -> Callable[[R], R]:
    """Give the decorated stub (`async def customer(self, info: Ctx) -> Customer | None: ...`,
    kept for its name, signature and return type) the resolver the declaration describes."""
    spec = LoadedBy(loader, key, keyed)

    def declare(stub: R) -> R:
        async def resolve(self: Any, info: Any, **arguments: Any) -> Any:
            load_key = spec.key_of(self, arguments)
            if load_key is None:
                return None
            return await getattr(info.context.loaders, loader).load(load_key)

        # The stub's name, annotations and (through __wrapped__) signature, for strawberry.
        functools.update_wrapper(resolve, stub)
        setattr(resolve, _ATTRIBUTE, spec)
        return resolve  # type: ignore[return-value]

    return declare


def loaded_by_of(function: object) -> LoadedBy | None:
    """The declaration behind a resolver made by `loaded_by`, if it is one."""
    spec = getattr(function, _ATTRIBUTE, None)
    return spec if isinstance(spec, LoadedBy) else None
