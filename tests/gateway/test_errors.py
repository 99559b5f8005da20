"""Every error code is written once, as its class's `code` in gateway/errors.py."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.errors
from gateway.errors import TalkgateError

ROOT = Path(__file__).resolve().parents[2]


def _codes() -> dict[str, str]:
    """Each code and the class that carries it, TalkgateError's own included."""
    classes: list[type[TalkgateError]] = [TalkgateError]
    for kind in classes:  # grows as it goes: every subclass, at any depth
        classes += kind.__subclasses__()
    return {c.code: c.__name__ for c in classes}


def _spelled_out(text: str, codes: dict[str, str]) -> list[tuple[int, str]]:
    """(line, code) of every string constant of the source that is a code, docstrings apart."""
    tree = ast.parse(text)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in codes
        and id(node) not in docstrings
    ]


def test_every_code_has_one_class() -> None:
    codes = _codes()
    names = [c for c in vars(gateway.errors).values() if isinstance(c, type)]
    assert len(codes) == len(names)  # no two classes share a code
    assert {"BAD_USER_INPUT", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"} <= codes.keys()


def test_no_code_is_spelled_out_outside_its_class() -> None:
    codes = _codes()
    sources = sorted(
        p for room in ("gateway", "schema", "resolvers") for p in (ROOT / room).rglob("*.py")
    )
    found = [
        f"{path.relative_to(ROOT)}:{line}: {code!r} is {codes[code]}.code"
        for path in sources
        if path != ROOT / "gateway" / "errors.py"
        for line, code in _spelled_out(path.read_text(), codes)
    ]
    assert found == []


def test_the_check_sees_codes_in_dicts_and_calls_but_not_in_docstrings() -> None:
    text = '"""Answers FORBIDDEN."""\nx = {"code": "FORBIDDEN"}\nf("NOT_FOUND")\n'
    assert _spelled_out(text, _codes()) == [(2, "FORBIDDEN"), (3, "NOT_FOUND")]
