"""How the object types are declared and built: fields with their descriptions (personal
data behind `customers:pii`), instances made from the store's plain documents, and each
document's object made once while it is remembered."""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, TypeVar, cast

import strawberry

from gateway.storage.documents import Doc
from schema.node import GlobalIdOnRead
from schema.permissions import PII, needs

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_INIT_FIELDS: dict[type, tuple[tuple[str, ...], frozenset[str], bool]] = {}
# Objects remembered for each kind built from stored documents (once_per_document).
_REMEMBERED_PER_KIND: Final = 4096


def build(cls: type[T], source: Doc, /, **extra: Any) -> T:
    """An instance of the strawberry type `cls` from a stored document (keys = field names)."""
    known = _INIT_FIELDS.get(cls)
    if known is None:
        known = _init_fields(cls)
        _INIT_FIELDS[cls] = known
    names, accepted, direct = known
    values = dict(zip(names, map(source.get, names), strict=True))
    values.update(extra)
    if not direct or not accepted.issuperset(extra):
        return cls(**values)  # and its TypeError for a field it does not have
    # Every field is given, so the dataclass __init__ would only set them; skipping its
    # keyword-argument handling pays, as a page of talks makes ~200 of these.
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def _init_fields(cls: type) -> tuple[tuple[str, ...], frozenset[str], bool]:
    """The fields __init__ takes, and whether setting them is all it does."""
    fields = dataclasses.fields(cls)
    # A Node's global id is the class's to encode when read (schema.node.GlobalIdOnRead).
    names = tuple(
        f.name
        for f in fields
        if f.init and not isinstance(cls.__dict__.get(f.name), GlobalIdOnRead)
    )
    params = getattr(cls, "__dataclass_params__", None)
    # The generated __init__ leaves alone a field it does not take unless that field has a
    # default factory (the types here never write their own __init__).
    direct = (
        all(f.init or f.default_factory is dataclasses.MISSING for f in fields)
        and params is not None
        and params.init
        and not params.frozen
        and not hasattr(cls, "__post_init__")
        and not hasattr(cls, "__slots__")
    )
    return names, frozenset(names), direct


def field(description: str, **kwargs: Any) -> Any:
    return strawberry.field(description=description, **kwargs)


def pii_field(description: str, **kwargs: Any) -> Any:
    """A field holding personal data: null, with a FORBIDDEN error, without customers:pii
    (schema.permissions.PII_FIELDS lists them, with why)."""
    return strawberry.field(
        description=description + " Needs the customers:pii scope.",
        extensions=needs(PII),
        **kwargs,
    )


class OncePerDocument(Protocol[T_co]):
    """What `once_per_document` makes: the object of one document, or of many at once."""

    def __call__(self, doc: Doc, /) -> T_co: ...

    def many(self, docs: Iterable[Doc], /) -> Sequence[T_co]: ...


def once_per_document(make: Callable[[Doc], T]) -> OncePerDocument[T]:
    """`make`, run once for each document object while it is remembered.

    The store hands out the same dict for a row whose stored text has not changed
    (gateway/storage/docs.py), so a page read again builds nothing again. The objects are
    shared between requests and callers: they hold no per-request state, and nothing writes
    to them (what a caller may see is decided per field, by the schema's permissions).
    Remembered least recently used first out; each entry keeps its document alive, so the
    document's id cannot be reused while it is remembered. Called on the event loop only.

    `.many(docs)` is the objects of `docs` in order, those remembered found without a call
    each (with connection() and a loader's first priming taking them so, W1 and W2 cost
    ~0.13 M instructions less per request under bench.instructions).
    """
    made: OrderedDict[int, tuple[Doc, T]] = OrderedDict()

    def build_once(doc: Doc) -> T:
        key = id(doc)
        entry = made.get(key)
        if entry is not None and entry[0] is doc:
            made.move_to_end(key)
            return entry[1]
        built = make(doc)
        made[key] = (doc, built)
        if len(made) > _REMEMBERED_PER_KIND:
            made.popitem(last=False)
        return built

    def many(docs: Iterable[Doc]) -> list[T]:
        found, used = made.get, made.move_to_end
        built: list[T] = []
        for doc in docs:
            key = id(doc)
            entry = found(key)
            if entry is not None and entry[0] is doc:
                used(key)
                built.append(entry[1])
            else:
                built.append(build_once(doc))
        return built

    once = cast(OncePerDocument[T], functools.update_wrapper(build_once, make))
    once.many = many  # type: ignore[method-assign]
    return once
