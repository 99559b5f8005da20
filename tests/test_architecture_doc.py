"""docs/architecture.md is a map that cannot drift: what it names exists, and it names every
module of gateway/, schema/ and resolvers/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
ROOMS = ("gateway", "schema", "resolvers")


def _named() -> set[str]:
    """Every `backticked` path or file name of the doc."""
    return set(re.findall(r"`([\w/.-]+\.py|[\w-]+/(?:[\w-]+/)*)`", DOC.read_text()))


def test_every_path_the_map_names_exists() -> None:
    # A path from the repository's root, or from a room (`demo/` is gateway/demo/).
    missing = [
        name
        for name in sorted(_named())
        if "/" in name
        and not (ROOT / name).exists()
        and not any((ROOT / room / name).exists() for room in ROOMS)
    ]
    assert missing == []


def test_every_module_is_on_the_map() -> None:
    named = _named()
    basenames = {Path(n).name for n in named}
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for room in ROOMS
        for p in (ROOT / room).rglob("*.py")
        if p.name != "__init__.py"
    )
    absent = [m for m in modules if m not in named and Path(m).name not in basenames]
    assert absent == []


def test_the_map_names_each_package_of_the_store_and_the_client() -> None:
    named = _named()
    assert {"gateway/storage/", "gateway/talkme/", "schema/", "resolvers/"} <= named
