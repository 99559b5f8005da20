"""The graphql-core internals the fast execution path (gateway/graphql/execution/) is built on.

FastExecutionContext overrides three of graphql-core's executor methods and calls eight
more; it reads the executor's attributes and the grouped field sets of collect_fields. They
are internals, not graphql-core's public API, so talkgate depends on one minor series
(pyproject.toml) and these tests say plainly what moved when another is installed.
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import graphql
import pytest
from graphql.execution.executor import Executor
from packaging.requirements import Requirement
from packaging.version import Version

from gateway.graphql.execution import GRAPHQL_CORE_SERIES, FastExecutionContext

ROOT = Path(__file__).resolve().parents[3]

OVERRIDDEN = ("execute_fields", "complete_list_value", "build_per_event_executor")
CALLED = (
    "build_resolve_info",
    "collect_and_execute_subfields",
    "collect_subfields",
    "complete_value",
    "execute_field",
    "handle_field_error",
    "is_awaitable",
    "settle_in_background",
)


def test_the_installed_graphql_core_is_the_series_the_fast_path_was_written_for() -> None:
    installed = (graphql.version_info.major, graphql.version_info.minor)
    assert installed == GRAPHQL_CORE_SERIES, (
        f"graphql-core {graphql.__version__} is installed; gateway/graphql/execution/ relies"
        f" on the internals of {GRAPHQL_CORE_SERIES[0]}.{GRAPHQL_CORE_SERIES[1]}.x: check each"
        " override and call against the new executor before widening the pin"
    )


def test_the_project_pins_that_series() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [Requirement(d) for d in project["dependencies"] if d.startswith("graphql-core")]
    assert len(pins) == 1
    major, minor = GRAPHQL_CORE_SERIES
    specifier = pins[0].specifier
    assert Version(graphql.__version__) in specifier
    assert Version(f"{major}.{minor + 1}.0") not in specifier
    assert Version(f"{major}.{minor - 1}.99") not in specifier


@pytest.mark.parametrize("name", OVERRIDDEN)
def test_each_override_keeps_graphql_core_s_signature(name: str) -> None:
    assert name in vars(FastExecutionContext), name
    ours = inspect.signature(getattr(FastExecutionContext, name))
    theirs = inspect.signature(getattr(Executor, name))
    assert list(ours.parameters) == list(theirs.parameters)


@pytest.mark.parametrize("name", CALLED)
def test_each_executor_method_called_is_still_there(name: str) -> None:
    assert callable(getattr(Executor, name, None)), f"graphql-core's Executor has no {name}"
    assert name not in vars(FastExecutionContext)


def test_the_list_above_is_what_the_fast_path_calls() -> None:
    package = ROOT / "gateway" / "graphql" / "execution"
    source = "".join(module.read_text() for module in sorted(package.glob("*.py")))
    inherited = {
        name
        for name in dir(Executor)
        if callable(getattr(Executor, name))
        and not name.startswith("_")
        and name not in vars(FastExecutionContext)
        and f"self.{name}(" in source
    }
    assert inherited == set(CALLED)
