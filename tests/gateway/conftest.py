"""The PostgreSQL database the store tests share: created for the session, dropped after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.backends import (
    POSTGRES_URL,
    UNREACHABLE,
    create_database,
    drop_database,
    run_apart,
    shown,
    with_database,
)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a throwaway database; every PostgreSQL test skips, saying why, without one."""
    try:
        name = run_apart(lambda: create_database(POSTGRES_URL))
    except UNREACHABLE as exc:
        pytest.skip(f"PostgreSQL not reachable at {shown(POSTGRES_URL)}: {exc!r}")
    yield with_database(POSTGRES_URL, name)
    run_apart(lambda: drop_database(POSTGRES_URL, name))
