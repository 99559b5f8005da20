"""Where a store's schema stands: the migrations each backend applies in order, and what an
operator is told when the store is behind (`talkgate migrate`) or ahead of this talkgate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Migration(NamedTuple):
    """One step of a backend's schema: what it adds, in a line, and its SQL."""

    summary: str
    sql: str


@dataclass(frozen=True, slots=True)
class SchemaState:
    """A store's schema version against the latest this talkgate knows."""

    current: int
    latest: int
    # The summaries of the migrations not applied yet, in the order they apply.
    pending: tuple[str, ...]

    @classmethod
    def of(cls, current: int, migrations: tuple[Migration, ...]) -> SchemaState:
        pending = tuple(m.summary for m in migrations[current:])
        return cls(current, len(migrations), pending)

    @property
    def newer(self) -> bool:
        """Written by a newer talkgate: this one may not read it, nor change it."""
        return self.current > self.latest


class StoreSchemaError(Exception):
    """The store's schema is not one this talkgate may use as it is: newer than it knows, or
    with migrations pending when it may not apply them. Its message is one line; `at` says
    it of a store named by where it is."""

    def __init__(self, state: SchemaState) -> None:
        self.state = state
        super().__init__(self.at("the store"))

    def at(self, store: str) -> str:
        raise NotImplementedError


class NewerStore(StoreSchemaError):
    def at(self, store: str) -> str:
        return (
            f"{store} has schema version {self.state.current}, newer than this talkgate's"
            f" {self.state.latest} (a newer talkgate wrote it): run that one or a newer one;"
            " the store was not changed"
        )


class PendingMigrations(StoreSchemaError):
    def at(self, store: str) -> str:
        count = len(self.state.pending)
        return (
            f"{store} has {count} pending migration{'s' * (count != 1)} (schema version"
            f" {self.state.current} of {self.state.latest}) and TALKGATE_AUTO_MIGRATE is"
            " false: run `talkgate migrate` first"
        )


def newer_store(state: SchemaState) -> StoreSchemaError:
    return NewerStore(state)


def pending_migrations(state: SchemaState) -> StoreSchemaError:
    return PendingMigrations(state)
