"""The explorer's example tabs (explorer/src/examples.js), read as its users see them: each
tab's operations, the variables GraphiQL sends, and what a good answer holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphql import OperationDefinitionNode, parse

ROOT = Path(__file__).resolve().parents[1]


EXAMPLES_JS = ROOT / "explorer" / "src" / "examples.js"


def examples() -> dict[str, str]:
    """The tabs' documents by their constant's name, in the order the explorer opens them."""
    text = EXAMPLES_JS.read_text()
    documents = dict(re.findall(r"const (\w+) = `(.*?)`;", text, flags=re.DOTALL))
    listed = re.search(r"export const EXAMPLES = \[([^\]]*)\]", text)
    assert listed is not None, "examples.js exports EXAMPLES"
    order = [name.strip() for name in listed.group(1).split(",") if name.strip()]
    assert set(order) == set(documents), "every example is a tab, every tab an example"
    return {name: documents[name] for name in order}


def operations() -> Iterator[tuple[str, str, OperationDefinitionNode]]:
    for tab, document in examples().items():
        for definition in parse(document).definitions:
            assert isinstance(definition, OperationDefinitionNode)
            assert definition.name is not None, f"{tab}: a tab's operations are named"
            yield tab, document, definition


def defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    """What GraphiQL sends for the operation's variables: nothing; the defaults apply. Every
    non-null variable must then have one, or the tab cannot run as it opens."""
    for variable in operation.variable_definitions or ():
        required = variable.type.kind == "non_null_type"
        assert variable.default_value is not None or not required, (
            f"{operation.name.value if operation.name else '?'}: ${variable.variable.name.value}"
            " is required and has no default"
        )
    return {}


def emptiness(value: Any, path: str) -> list[str]:
    """Where an answer is null or an empty page of results."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        found = [path] if value.get("edges") == [] else []
        for key, item in value.items():
            if key not in ("finishedAt", "endCursor", "agent"):  # may be null in good data
                found += emptiness(item, f"{path}.{key}") if isinstance(item, dict) else []
        return found
    return []


def checked(tab: str, name: str, answer: dict[str, Any]) -> None:
    assert "errors" not in answer, f"{tab} {name}: {answer['errors']}"
    data = answer["data"]
    for field, value in data.items():
        assert not emptiness(value, field), f"{tab} {name}: {emptiness(value, field)} in {data}"
