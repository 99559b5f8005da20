"""graphql-schema-linter (npm, pinned in tests/conformance/schema-lint) on schema.graphql, with
the rules talkgate keeps: every type, field, argument, enum value and input field described,
names cased as GraphQL's conventions say, no unused type, and Relay's connection, connection
argument and PageInfo specs. The README says which rules are off and why."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.backends import node_packages

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "tests" / "conformance" / "schema-lint"
README = ROOT / "README.md"
# The linter's rules talkgate does not keep (the README's table gives the reason of each).
OFF = {
    "enum-values-sorted-alphabetically",
    "input-object-fields-sorted-alphabetically",
    "type-fields-sorted-alphabetically",
}


@pytest.fixture(scope="module")
def npm() -> str:
    node_packages(LINT, "graphql-schema-linter")
    found = shutil.which("npm")
    assert found is not None  # node_packages found it
    return found


def test_schema_graphql_passes_the_rules_kept(npm: str) -> None:
    linted = subprocess.run(  # noqa: S603 - npm on the folder's own script
        [npm, "run", "--silent", "lint"],
        cwd=LINT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 errors detected" in linted.stdout


def test_every_rule_of_the_linter_is_kept_or_said_off_in_the_readme(npm: str) -> None:
    rules_dir = LINT / "node_modules" / "graphql-schema-linter" / "lib" / "rules"
    every = {path.stem.replace("_", "-") for path in rules_dir.glob("*.js")} - {"index"}
    kept = set(json.loads((LINT / ".graphql-schema-linterrc").read_text())["rules"])
    assert kept | OFF == every, "a rule the linter gained is neither kept nor said off"
    assert not kept & OFF
    readme = README.read_text()
    for rule in OFF:
        assert f"`{rule}`" in readme, f"the README does not say why {rule} is off"
