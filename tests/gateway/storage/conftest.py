"""The storage suite's store: an empty one of each backend (tests/backends.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.storage import TalkStore
from tests.backends import BACKENDS, opened_store


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TalkStore]:
    """An empty store of each backend."""
    async with opened_store(request.param, tmp_path, request) as opened:
        yield opened
