"""Parsed and validated documents, cached by what they say rather than how they are written.

Every parse in the gateway goes through `parse_document`, always with a token limit: the
response cache's analysis and strawberry's own parse share one cache, so a document is
parsed once. The cache is keyed by a digest of the text (it does not hold texts as keys) and
bounded by entries, by the tokens of the documents it holds (a parsed document of 3000
tokens is ~1.5 MiB of objects) and by their characters.

Validation results are keyed by the document's token stream without its comments and
whitespace (its shape), so a comment or a space added to a document already validated is a
cache hit; the errors of such a hit are moved to the same tokens of the new text.
graphql-core's OverlappingFieldsCanBeMerged runs with a smaller work budget than its own
default (which allows ~1 s of work); what it gives up on is QUERY_TOO_COMPLEX.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OverlappingFieldsCanBeMergedRule,
    Source,
    TokenKind,
    get_operation_ast,
    parse,
)
from graphql.language.ast import Token
from graphql.validation import ASTValidationRule, ValidationContext
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from gateway.graphql.widths import too_wide

MAX_DOCUMENTS = 1024
MAX_DOCUMENT_TOKENS = 200_000  # over all cached documents
MAX_DOCUMENT_CHARS = 16 * 1024 * 1024  # over all cached documents
MAX_VALIDATIONS = 1024
# OverlappingFieldsCanBeMerged's budget (graphql-core counts 2 per pair of fields compared,
# 500,000 by default). The documents in the guides spend under 10; the fields limit keeps
# any merged selection set under 100 fields.
OVERLAP_BUDGET = 50_000


@dataclass(frozen=True, slots=True)
class _Parsed:
    document: DocumentNode | None
    # A syntax error's message and positions (not the error: it would hold the text).
    error: tuple[str, list[int] | None] | None
    tokens: int
    chars: int


class _DocumentCache:
    def __init__(self) -> None:
        self.entries: OrderedDict[tuple[bytes, int], _Parsed] = OrderedDict()
        self.tokens = 0
        self.chars = 0

    def get(self, key: tuple[bytes, int]) -> _Parsed | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: tuple[bytes, int], parsed: _Parsed) -> None:
        if parsed.tokens > MAX_DOCUMENT_TOKENS // 4 or parsed.chars > MAX_DOCUMENT_CHARS // 4:
            return  # one document would crowd out the rest
        old = self.entries.pop(key, None)
        if old is not None:
            self._forget(old)
        self.entries[key] = parsed
        self.tokens += parsed.tokens
        self.chars += parsed.chars
        while (
            len(self.entries) > MAX_DOCUMENTS
            or self.tokens > MAX_DOCUMENT_TOKENS
            or self.chars > MAX_DOCUMENT_CHARS
        ):
            _, oldest = self.entries.popitem(last=False)
            self._forget(oldest)

    def _forget(self, parsed: _Parsed) -> None:
        self.tokens -= parsed.tokens
        self.chars -= parsed.chars

    def clear(self) -> None:
        self.entries.clear()
        self.tokens = self.chars = 0


_DOCUMENTS = _DocumentCache()


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def parse_document(text: str, max_tokens: int) -> DocumentNode:
    """`text` parsed, with locations, stopping past `max_tokens` tokens (GraphQLError)."""
    key = (text_digest(text), max_tokens)
    known = _DOCUMENTS.get(key)
    if known is None:
        try:
            document = parse(text, max_tokens=max_tokens)
        except GraphQLError as error:
            positions = list(error.positions) if error.positions is not None else None
            known = _Parsed(None, (error.message, positions), 0, 0)
        else:
            known = _Parsed(document, None, len(_tokens(document)), len(text))
        _DOCUMENTS.put(key, known)
    if known.error is not None:
        message, positions = known.error
        # Lines and columns need only the text up to the error (graphql-core scans the whole
        # body of the source to find them).
        end = max(positions or [0]) + 1
        raise GraphQLError(message, source=Source(text[:end]), positions=positions)
    assert known.document is not None
    return known.document


def parsed_operation(
    query: str, name: str | None, max_tokens: int
) -> tuple[DocumentNode, OperationDefinitionNode | None] | None:
    """`query` parsed (through the shared cache) and the operation GraphQL's GetOperation
    finds in it: None for none of that `name`, or, without one, for several (strawberry
    would run the first). None for a document that does not parse, which the execution
    reports."""
    try:
        document = parse_document(query, max_tokens)
    except GraphQLError:
        return None
    return document, get_operation_ast(document, name)


def runs_no_operation(query: str, name: str | None, max_tokens: int) -> bool:
    """Whether `query` parses but has no operation to run by GraphQL's GetOperation."""
    parsed = parsed_operation(query, name, max_tokens)
    return parsed is not None and parsed[1] is None


def _tokens(document: DocumentNode) -> list[Token]:
    """The document's tokens without comments (and the ignored characters between them)."""
    found: list[Token] = []
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        if token.kind is not TokenKind.COMMENT and token.kind is not TokenKind.SOF:
            if token.kind is TokenKind.EOF:
                break
            found.append(token)
        token = token.next
    return found


Shape = tuple[bytes, list[int]]
# The shapes of documents seen lately, by the document object (parse_document hands out the
# same object for the same text): walking the tokens again was 4% of a cold page's cost.
_SHAPES: OrderedDict[int, tuple[DocumentNode, Shape]] = OrderedDict()
_SHAPES_KEPT = 1024
SHAPE_TEXT_KEPT = 8192


def document_shape(document: DocumentNode) -> Shape | None:
    """A digest of what the document says (its tokens, neither comments nor whitespace),
    and where each token starts; None for a document parsed without locations."""
    if document.loc is None:
        return None
    known = _SHAPES.get(id(document))
    # The entry holds the document, so its id is not reused while the entry is kept.
    if known is not None and known[0] is document:
        return known[1]
    tokens = _tokens(document)
    material = "\x00".join(f"{t.kind.value}\x01{t.value or ''}" for t in tokens)
    digest = hashlib.blake2b(material.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    shape = digest, [t.start for t in tokens]
    # Kept only for short texts: an entry holds its document, and so its whole text,
    # beside the parse cache's own bounds.
    if document.loc.source is not None and len(document.loc.source.body) <= SHAPE_TEXT_KEPT:
        _SHAPES[id(document)] = (document, shape)
    if len(_SHAPES) > _SHAPES_KEPT:
        _SHAPES.popitem(last=False)
    return shape


class _BudgetedOverlap(OverlappingFieldsCanBeMergedRule):
    """graphql-core's rule with OVERLAP_BUDGET instead of its default budget."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = OVERLAP_BUDGET


def validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: Sequence[type[ASTValidationRule]],
) -> list[GraphQLError]:
    """strawberry's validation with the budgeted overlap rule; a document the rule gives
    up on is QUERY_TOO_COMPLEX."""
    budgeted = tuple(
        _BudgetedOverlap if rule is OverlappingFieldsCanBeMergedRule else rule for rule in rules
    )
    errors = validate_document(schema, document, budgeted)
    if any(isinstance(error, ValidationAbortedError) for error in errors):
        return [too_wide()]
    return errors


@dataclass(frozen=True, slots=True)
class _Validated:
    schema: GraphQLSchema
    errors: list[GraphQLError]
    starts: list[int]  # where the tokens of the document validated start (errors only)


_VALIDATED: OrderedDict[tuple[bytes, int, tuple[type[ASTValidationRule], ...]], _Validated] = (
    OrderedDict()
)


def validate_cached(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: Sequence[type[ASTValidationRule]],
) -> list[GraphQLError]:
    """`validate`, remembered by the document's shape: the same tokens, whatever comments
    and whitespace are around them, give the same errors (at the new text's positions)."""
    shape = document_shape(document)
    if shape is None:
        return validate(schema, document, rules)
    digest, starts = shape
    key = (digest, id(schema), tuple(rules))
    known = _VALIDATED.get(key)
    if known is not None and known.schema is schema:
        _VALIDATED.move_to_end(key)
        if known.starts == starts or not known.errors:
            return list(known.errors)
        source = document.loc.source if document.loc is not None else None
        return [_moved(error, known.starts, starts, source) for error in known.errors]
    errors = validate(schema, document, rules)
    _VALIDATED[key] = _Validated(schema, errors, starts if errors else [])
    if len(_VALIDATED) > MAX_VALIDATIONS:
        _VALIDATED.popitem(last=False)
    return list(errors)


def _moved(
    error: GraphQLError, old: list[int], new: list[int], source: Source | None
) -> GraphQLError:
    """`error`, found in a document whose tokens start at `old`, for the same tokens at
    `new` (another text of the same shape)."""
    positions: list[int] | None = []
    for position in error.positions or ():
        index = bisect.bisect_left(old, position)
        if index >= len(old) or old[index] != position or positions is None:
            positions = None
            continue
        positions.append(new[index])
    return GraphQLError(
        error.message,
        source=source if positions else None,
        positions=positions or None,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


class CachedParse(SchemaExtension):
    """Parses through the shared cache, at most `max_tokens` tokens; a document that does
    not parse is left to strawberry, which parses it again (with the same limit) and
    reports the error the usual way (typed by TypedErrors)."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            try:
                context.graphql_document = parse_document(context.query, self.max_tokens)
            except GraphQLError:
                context.graphql_document = None
        yield


class CachedValidation(SchemaExtension):
    """Validates through the shape-keyed cache, unless a check before it (LimitQueries)
    already refused the document."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            context.pre_execution_errors = validate_cached(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
        yield


def clear_caches() -> None:
    """Forget every cached parse and validation (tests)."""
    _DOCUMENTS.clear()
    _VALIDATED.clear()
