"""The payload model compiled to the validators ingest runs: a whole body checked at once,
straight into the documents the store keeps (`validate_talks`), with native fast paths in
front of the lenient coercers; a refused body validated again for its exact errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from pydantic import (
    TypeAdapter,
    ValidationError,
)
from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import core_schema as cs

from gateway.ingest.coercers import (
    DEFAULT_ZONE,
    INT64_MIN,
    INT64_STOP,
    as_text,
    datetime_field,
    iso,
    iso_datetime_field,
    lenient_bool,
    lenient_int,
)
from gateway.ingest.payload import TalkPayload
from gateway.storage.documents import (
    CHANNEL_FIELDS,
    CUSTOMER_FIELDS,
    EVENT_FIELDS,
    MAX_ERRORS,
    MESSAGE_FIELDS,
    TALK_FIELDS,
    USER_FIELDS,
    Doc,
    Document,
    NormalizedTalk,
)


def _split(doc: Doc) -> NormalizedTalk:
    """Split the JSON-ready document of a whole talk into the documents the store keeps."""
    talk_id: int = doc["id"]
    histories: list[Doc] = doc.pop("talk_histories")
    events: list[Doc] = doc.pop("talk_events")
    customer: Doc | None = doc.pop("customer")

    agent_ids = {doc["agent_id"], doc["delivered_to"], doc["scaled_to"]}
    users: dict[int, Doc] = {}
    channels: dict[int, Doc] = {}
    messages: dict[int, Doc] = {}
    for history in histories:
        user = history.pop("user")
        channel = history.pop("channel")
        if user is not None:
            users[user["id"]] = user
        if channel is not None:
            channels[channel["id"]] = channel
        history["talk_id"] = talk_id
        agent_ids.add(history["user_id"])
        # Later entries win when one snapshot repeats an id (a dict keeps the first position).
        messages[history["id"]] = history
    unique_events: dict[int, Doc] = {}
    for event in events:
        event["talk_id"] = talk_id
        agent_ids.add(event["agent_id"])
        unique_events[event["id"]] = event
    agent_ids.discard(None)
    return NormalizedTalk(
        id=talk_id,
        doc=Document.of(doc, TALK_FIELDS),
        messages=[Document.of(m, MESSAGE_FIELDS) for m in messages.values()],
        events=[Document.of(e, EVENT_FIELDS) for e in unique_events.values()],
        customer=None if customer is None else Document.of(customer, CUSTOMER_FIELDS),
        users=[Document.of(u, USER_FIELDS) for u in users.values()],
        channels=[Document.of(ch, CHANNEL_FIELDS) for ch in channels.values()],
        agent_ids=frozenset(agent_ids - users.keys()),
    )


def _documents_schema(schema: CoreSchema) -> CoreSchema:
    """`schema`'s validation, yielding what `model_dump(mode="json", by_alias=True)` would.

    Each model becomes a typed dict keyed by alias, each datetime its ISO 8601 text: one pass
    into the final dicts, instead of building model instances and walking them to dump them.
    Errors (loc and message) stay those of the models.
    """
    kind = schema["type"]
    if kind == "model":
        return _model_documents_schema(schema)
    if kind == "function-before" and schema["function"]["function"] is datetime_field:
        inner = schema["schema"]
        if inner["type"] == "nullable" and inner["schema"]["type"] == "datetime":
            return cs.with_info_before_validator_function(iso_datetime_field, cs.any_schema())
        if inner["type"] == "datetime":
            return cs.no_info_after_validator_function(iso, schema)
        raise TypeError(f"unexpected datetime schema {inner['type']}")
    converted: dict[str, Any] = dict(schema)
    for key in ("schema", "items_schema", "keys_schema", "values_schema"):
        if key in schema:
            converted[key] = _documents_schema(schema[key])
    for key in ("choices", "steps", "definitions"):
        if key in schema:
            converted[key] = [_documents_schema(s) for s in schema[key]]
    if kind in {"model-fields", "typed-dict", "dataclass-args", "tagged-union", "tuple"}:
        raise TypeError(f"{kind} schemas are not converted")
    return converted


def _model_documents_schema(schema: Any) -> CoreSchema:
    model_fields = schema["schema"]
    if schema.get("custom_init") or schema.get("root_model") or model_fields.get("computed_fields"):
        raise TypeError(f"{schema['cls'].__name__} cannot be validated into a plain dict")
    fields: dict[str, cs.TypedDictField] = {}
    for name, model_field in model_fields["fields"].items():
        alias = model_field.get("validation_alias")
        if alias not in (None, model_field.get("serialization_alias")) or not isinstance(
            alias or "", str
        ):
            raise TypeError(f"{name}: only a plain alias, the same both ways, is converted")
        fields[alias or name] = cs.typed_dict_field(
            _documents_schema(model_field["schema"]),
            required=model_field["schema"]["type"] != "default",
            # `populate_by_name`: the field is read by its alias or else by its name.
            validation_alias=[[alias], [name]] if alias else None,
        )
    # A model refuses what is not a dict with a message naming it; a typed dict would not.
    name = schema["cls"].__name__
    is_dict = cs.custom_error_schema(
        cs.is_instance_schema(dict),
        custom_error_type="talk_part_type",
        custom_error_message=f"Input should be a valid dictionary or instance of {name}",
    )
    return cs.chain_schema(
        [
            is_dict,
            cs.typed_dict_schema(
                fields, extra_behavior="allow", total=True, config=schema.get("config")
            ),
        ]
    )


def _fast_paths(schema: Any) -> Any:
    """`schema` with a native check in front of the lenient functions most fields go through.

    Nearly every value is already what its field wants (an int for an int, a bool for a
    flag, a string or null for text): the lenient function would return it unchanged, and
    the field's own check accept it. A strict native check accepts exactly those values, so
    a talk is validated with about 300 fewer Python calls; any other value falls through
    to the function, as before. The result is the same; the errors are not (a union reports
    each alternative), so a body this refuses is validated again by the exact schema.
    """
    if isinstance(schema, list):
        return [_fast_paths(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _fast_paths(value) for key, value in schema.items()}
    if schema.get("type") != "function-before":
        return converted
    function, inner = schema["function"]["function"], schema["schema"]
    nullable = inner["type"] == "nullable"
    kind = (inner["schema"] if nullable else inner)["type"]
    fast: CoreSchema
    if function is lenient_int and kind == "int":
        bounds = inner["schema"] if nullable else inner
        fast = cs.int_schema(
            strict=True, ge=max(bounds.get("ge", INT64_MIN), INT64_MIN), lt=INT64_STOP
        )
    elif function is lenient_bool and kind == "bool":
        fast = cs.bool_schema(strict=True)
    elif function is as_text and kind == "str":
        fast = cs.str_schema(strict=True)
    elif function is iso_datetime_field:  # already nullable: it answers None for None
        return cs.union_schema([cs.none_schema(), converted], mode="left_to_right")
    else:
        return converted
    if nullable:
        fast = cs.nullable_schema(fast)
    return cs.union_schema([fast, converted], mode="left_to_right")


_TALKS = TypeAdapter(list[TalkPayload])
_DOCUMENTS_SCHEMA = _documents_schema(_TALKS.core_schema)
_TALK_DOCUMENTS = SchemaValidator(_DOCUMENTS_SCHEMA)
# The whole body at once, stopping at its first bad talk: a body of 300,000 bad talks is
# refused at the cost of its first one, not of 1.5 M errors (12 s for 990 KB of `[{},...]`).
_FAST_DOCUMENTS = SchemaValidator({**_fast_paths(_DOCUMENTS_SCHEMA), "fail_fast": True})

_JSON_NAMES: dict[type, str] = {
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class PayloadRejected(ValueError):
    """A body that is not a talk or an array of talks; `errors` say field by field why.

    `errors` holds at most MAX_ERRORS of them, the first in the body's order; `error_count`
    is how many were found. `truncated`: validation stopped at the talk that took the count
    to MAX_ERRORS, before the end of the body, so `error_count` is a lower bound.
    """

    def __init__(
        self,
        reason: str,
        errors: list[dict[str, str]],
        *,
        error_count: int | None = None,
        truncated: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors
        self.error_count = len(errors) if error_count is None else error_count
        self.truncated = truncated


def validate_talks(data: object, *, zone: tzinfo = DEFAULT_ZONE) -> list[NormalizedTalk]:
    """Validate decoded JSON (one talk object or an array of them) into normalized talks."""
    items = validated_items(
        _FAST_DOCUMENTS.validate_python, data, zone, exact=_TALK_DOCUMENTS.validate_python
    )
    return [_split(doc) for doc in items]


def validated_items(
    validate: Callable[..., list[Any]],
    data: object,
    zone: tzinfo,
    *,
    exact: Callable[..., list[Any]] | None = None,
) -> list[Any]:
    """`validate` (a pydantic `validate_python` of a list of talks) applied to the talks of
    `data`, one talk object or an array of them; PayloadRejected, with the errors field by
    field, for anything else.

    The errors come from `exact` (by default `validate`), run on one talk at a time from the
    first bad one on, and stop once MAX_ERRORS are found: the cost of a rejection is bounded
    by the talks it reads, never by how many errors the body could yield. Each list inside a
    talk reports its first bad item only (`FirstError`).
    """
    if isinstance(data, dict):
        items: list[object] = [data]
        single = True
    elif isinstance(data, list):
        if not data:
            raise PayloadRejected(
                "the array holds no talk", [{"loc": "", "msg": "an empty array holds no talk"}]
            )
        items, single = data, False
    else:
        raise PayloadRejected(
            "the body must be a talk object or an array of talks",
            [{"loc": "", "msg": f"got a JSON {_JSON_NAMES.get(type(data), 'value')}"}],
        )
    context = {"zone": zone}
    try:
        return validate(items, context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)
        start = first[0]["loc"][0] if first and first[0]["loc"] else 0
    errors: list[dict[str, str]] = []
    count = 0
    first_bad = start if isinstance(start, int) else 0
    index = first_bad
    for index in range(first_bad, len(items)):
        if count >= MAX_ERRORS:
            break
        try:
            (exact or validate)([items[index]], context=context)
        except ValidationError as exc:
            count += exc.error_count()
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                if len(errors) == MAX_ERRORS:
                    break
                loc = err["loc"][1:] if single else (index, *err["loc"][1:])
                errors.append({"loc": ".".join(str(p) for p in loc), "msg": err["msg"]})
    else:
        index = len(items)
    truncated = index < len(items)
    raise PayloadRejected(
        "the body is not a valid talk", errors, error_count=count, truncated=truncated
    ) from None
