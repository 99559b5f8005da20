"""The arrows between the project's rooms run one way (docs: the README's layout).

Data flows HTTP → ingest → store and GraphQL → resolvers → store / Talkk.me client: the store
and the upstream client know nothing of GraphQL or of the webhook's payload model, and the
schema declares what the executor may assume (`schema.contracts`) without importing it.
Every import statement counts, those inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "schema", "resolvers")

# (the modules under this prefix, may not import modules under any of these prefixes)
FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    # The store: no GraphQL, no resolvers, no ingest (the webhook's payload model), no HTTP.
    (
        "gateway.storage",
        (
            "schema",
            "resolvers",
            "strawberry",
            "graphql",
            "starlette",
            "pydantic",
            "gateway.ingest",
            "gateway.graphql",
            "gateway.http.app",
        ),
    ),
    # The upstream client: no GraphQL, no resolvers, no store.
    (
        "gateway.talkme",
        ("schema", "resolvers", "strawberry", "graphql", "gateway.storage", "gateway.graphql"),
    ),
    # The schema declares; the executor and the HTTP edge read it, never the reverse.
    ("schema", ("resolvers", "gateway.graphql", "gateway.ingest", "gateway.http.app")),
    # Resolvers reach the store and the client, not the GraphQL edge or ingest.
    ("resolvers", ("gateway.graphql", "gateway.http", "gateway.ingest")),
    # The GraphQL edge is wired by the app, and never reaches back into it.
    ("gateway.graphql", ("gateway.http.app",)),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the source file, relative ones resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return _imports_in(path.read_text(), package)


def _imports_in(text: str, package: list[str]) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from gateway import payload` names a module too
                yield node.lineno, f"{base}.{alias.name}"


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_import_rules_see_every_source_file() -> None:
    names = {_module_name(p) for p in _sources()}
    assert {"gateway.storage.sqlite", "gateway.talkme.client", "schema.types"} <= names
    for prefix, _ in FORBIDDEN:
        assert any(_under(name, prefix) for name in names), prefix


@pytest.mark.parametrize(("room", "forbidden"), FORBIDDEN, ids=[room for room, _ in FORBIDDEN])
def test_no_import_runs_back_up(room: str, forbidden: tuple[str, ...]) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _sources()
        if _under(_module_name(path), room)
        for line, module in _imports(path)
        if any(_under(module, prefix) for prefix in forbidden)
    ]
    assert wrong == []


def test_the_checker_finds_imports_in_functions_relative_and_by_name() -> None:
    text = (
        "def f():\n"
        "    from gateway.graphql.execution import FastExecutionContext\n"
        "from ..payload import Document\n"
        "from gateway import webhook\n"
    )
    found = {module for _, module in _imports_in(text, ["gateway", "storage"])}
    assert {"gateway.graphql.execution", "gateway.payload", "gateway.webhook"} <= found


@pytest.mark.parametrize(
    "module", ["gateway.storage.sqlite", "gateway.storage.postgres", "gateway.storage.merge"]
)
def test_importing_a_store_builds_no_payload_validators(module: str) -> None:
    # A fresh interpreter: what importing the store alone pulls in.
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('pydantic', 'gateway.ingest.validation', 'strawberry', 'graphql')"
        " if m in sys.modules))"
    )
    run = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"


def test_tests_import_support_modules_never_a_test_module_or_a_conftest() -> None:
    # What tests share lives in support modules (tests/support.py and its kin); fixtures in
    # conftest.py files, which pytest finds by itself.
    def shared(module: str) -> bool:
        last = module.rsplit(".", 1)[-1]
        return last == "conftest" or last.startswith("test_")

    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, module in _imports(path)
        if _under(module, "tests") and shared(module)
    ]
    assert wrong == []
