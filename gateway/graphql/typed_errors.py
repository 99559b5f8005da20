"""Every GraphQL error typed: its `extensions.code`, its message without input values, the
unexpected ones masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLError,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError

from gateway.errors import (
    BadUserInput,
    ServiceUnavailable,
    TalkgateError,
)
from gateway.graphql.limits import is_token_limit_error, too_complex
from gateway.logs import request_id_var
from gateway.metrics import Metrics
from gateway.storage import StoreUnavailable

log = logging.getLogger("talkgate.graphql")


_SUGGESTION = re.compile(r" Did you mean .*\?$")
# graphql-core quotes rejected input values in its messages, and inputs may be passwords: each
# rule below words one of its messages (3.2 and 3.3) as a whole sentence without the value.
# Names from the schema (types, enum values, fields) and from the document's structure
# (selected fields, arguments, input fields, variables) stay: they say what to fix. An enum
# value given is a value, and is not quoted.
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    # 3.2: "Variable '$x' got invalid value <value> at 'x.y'; <why>"
    (
        re.compile(r"^(Variable '\$[^']*') got invalid value .*?(?=( at '[^']*')?; )", re.S),
        r"\1 got an invalid value",
    ),
    # "Value '<value>' does not exist in 'TalkStatus' enum."
    (
        re.compile(r"\bValue '.*' does not exist in '(\w+)' enum\.", re.S),
        r"The value given does not exist in the '\1' enum.",
    ),
    # "Int cannot represent non-integer value: <value>", suggestions kept.
    (
        re.compile(r"(cannot represent [^:;]*?value): (?:.*(?=\. Did you mean [^.]*\?$)|.*)", re.S),
        r"\1",
    ),
    # The lexer and parser: "Unexpected String '<value>'.", "found Int '<value>'", ...
    (
        re.compile(
            r"(Unexpected|found) (Name|String|BlockString|Int|Float) '.*'(?=\.$| is )", re.S
        ),
        r"\1 \2",
    ),
    (re.compile(r"(Invalid number, expected digit) but got: .*$", re.S), r"\1."),
    (re.compile(r"(Invalid number, unexpected digit after 0): .*$", re.S), r"\1."),
    (re.compile(r"(Invalid number, expected digit before '\.'), .*$", re.S), r"\1."),
    (re.compile(r"(Invalid (?:Unicode|character) escape sequence): .*$", re.S), r"\1."),
)
# Validation: "..., found: {...}.", "..., found "x".", "... Found: {...}."
_FOUND = re.compile(r",? [Ff]ound:? .*$", re.S)
_SYNTAX = "Syntax Error:"


def scrub_values(message: str) -> str:
    """`message` without the input values graphql-core quotes in it, ending as a sentence."""
    for pattern, replacement in _SCRUBS:
        message = pattern.sub(replacement, message)
    if not message.startswith(_SYNTAX):  # the parser's "found <token kind>" says no value
        message = re.sub(r"([?.])\.$", r"\1", _FOUND.sub(".", message))
    message = message.rstrip()
    # graphql-core writes sentences (talkgate's own messages are phrases, and stay so).
    if message[:1].isupper() and not message.endswith((".", "?", "!")):
        message += "."
    return message


class TypedErrors(SchemaExtension):
    """Give every error its `extensions.code`; mask the unexpected ones.

    Expected failures are TalkgateError subclasses, raised by resolvers and loaders. Parse,
    validation and variable errors are the caller's: BAD_USER_INPUT (QUERY_TOO_COMPLEX when a
    limit stopped them). Anything else is a bug: its message is replaced, and its trace goes
    to the log under the request id.
    """

    def __init__(self, *, hide_suggestions: bool = False, metrics: Metrics | None = None) -> None:
        self.hide_suggestions = hide_suggestions
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self.typed(e) for e in errors]

    def typed(self, error: GraphQLError) -> GraphQLError:
        """`error` with its code, its message scrubbed or masked (see the class)."""
        original = error.original_error
        if isinstance(original, TalkgateError):
            if error.message == original.message and error.extensions is original.extensions:
                return error  # typed already (graphql-core took the original's extensions)
            return _with(error, original.message, original.extensions)
        if isinstance(original, StoreUnavailable):
            log.warning("store unavailable: %s", original)
            return _with(
                error, "the store is unavailable, retry later", {"code": ServiceUnavailable.code}
            )
        if original is None or isinstance(original, GraphQLError):
            # Parse, validation and variable-coercion errors: the document or its inputs.
            if is_token_limit_error(error):
                if self.metrics is not None:
                    self.metrics.add(self.metrics.rejected_queries, "tokens")
                limited = too_complex("tokens", _token_count(error), _token_limit(error))
                return _with(error, limited.message, dict(limited.extensions or {}))
            message = scrub_values(error.message)
            if self.hide_suggestions:
                message = _SUGGESTION.sub("", message)
            code = (error.extensions or {}).get("code", BadUserInput.code)
            return _with(error, message, {**(error.extensions or {}), "code": code})
        request_id = request_id_var.get()
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            exc_info=(type(original), original, original.__traceback__),
        )
        return _with(
            error,
            "Internal server error",
            {"code": TalkgateError.code, "requestId": request_id},
        )


def _token_limit(error: GraphQLError) -> int:
    found = re.search(r"more than (\d+) tokens", error.message)
    return int(found.group(1)) if found else 0


def _token_count(error: GraphQLError) -> int:
    # graphql-core stops counting at the limit; the document holds at least one more.
    return _token_limit(error) + 1


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def pre_execution_typed(error: GraphQLError, typing: TypedErrors) -> GraphQLError:
    """`error` with its `extensions.code`: a document naming no operation it has (or several
    without a name) is the caller's, not a bug to mask."""
    if (error.extensions or {}).get("code"):
        return error
    original = error.original_error
    if isinstance(original, CannotGetOperationTypeError):
        # Not strawberry's reason: it quotes the name sent, and inputs are never quoted.
        message = (
            "the document has no operation to run: name one with `operationName`"
            if original.operation_name is None
            else "the document has no operation of the `operationName` given"
        )
        return _with(error, message, {"code": BadUserInput.code})
    return typing.typed(error)
