"""Scope checks: a field the key may not see resolves to null with a FORBIDDEN error.

`PII_FIELDS` is the one list of the fields that need `customers:pii`, each with why (the
partner guide's "fields per scope" table is this list). `schema.types` guards each of them
with `needs(PII)`; `check_pii_fields` says whether the guarded fields of a built schema are
exactly these (tests/abuse/test_pii.py runs it, and classifies every other field itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, cast

from graphql import GraphQLObjectType, GraphQLSchema
from strawberry import Info
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from gateway.errors import Forbidden
from schema.context import GraphContext

PII: Final = "customers:pii"

# (GraphQL type, GraphQL field) -> why the field is personal data. Only fields a talks:read
# key can reach are listed: the fields of a type reached only through one of these
# (Telephone, Email, CustomField, ProfileInfo) are covered by it.
PII_FIELDS: Final[dict[tuple[str, str], str]] = {
    ("Customer", "documentNumber"): "CPF or CNPJ.",
    ("Customer", "telephones"): "phone numbers, WhatsApp names and pictures.",
    ("Customer", "emails"): "e-mail addresses.",
    ("Customer", "customFields"): "free values such as phones and addresses.",
    ("Customer", "profileInfo"): "social-network name, handle, id and picture.",
    ("Customer", "profilePictureUrl"): "a picture of the person.",
    **{
        ("Customer", f"wildcard{n:02}"): "free register field, often CPF, e-mail or address."
        for n in range(1, 11)
    },
    ("Talk", "clientIp"): "IP address of the customer (Webchat).",
    ("Talk", "clientUserAgent"): "browser fingerprint of the customer (Webchat).",
    ("Talk", "latitude"): "location of the customer's installation.",
    ("Talk", "longitude"): "location of the customer's installation.",
    ("Talk", "urlViewer"): "a bearer link to PipeRun's viewer of the talk, contact data shown.",
    ("Talk", "rawPayloads"): "the deliveries as received, every personal field included.",
    ("BotVariable", "value"): "what the customer answered the bot: often CPF, e-mail, address.",
    ("TalkHistory", "from"): "sender address: the customer's phone number or handle.",
    ("TalkHistory", "to"): "recipient address: the customer's phone number or handle.",
    ("TalkHistory", "externalId"): "the provider's message id; a WhatsApp wamid encodes the phone.",
    ("TalkHistory", "responseFrom"): "the provider id of the message answered (a wamid).",
    ("Agent", "email"): "an employee's contact address; login and name identify the agent.",
}


class HasScope(BasePermission):
    """Grants access when the caller's API key carries `scope`."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.reason = f"this API key lacks the {scope} scope"
        self.message = self.reason

    def has_permission(self, source: Any, info: Info[GraphContext, None], **kwargs: Any) -> bool:
        return self.scope in info.context.caller.scopes

    def on_unauthorized(self) -> None:
        raise self.error()

    def error(self) -> Forbidden:
        """The error a caller without the scope gets at the field."""
        return Forbidden(self.reason, scope=self.scope)


def needs(*scopes: str) -> list[FieldExtension]:
    """Field extensions that require every one of `scopes` (the first one missing is named)."""
    return [PermissionExtension(permissions=[HasScope(s) for s in scopes], use_directives=False)]


def scope_checks(field: object) -> tuple[HasScope, ...] | None:
    """The scope checks of a strawberry field whose only extension is `needs(...)` (so that
    refusing it needs no resolver run, and granting it leaves a field like any other), in
    the order they run; None for any other field."""
    if not isinstance(field, StrawberryField) or len(field.extensions) != 1:
        return None
    extension = field.extensions[0]
    if (
        type(extension) is not PermissionExtension
        or extension.use_directives
        or extension.fail_silently
        or not extension.permissions
        or not all(type(p) is HasScope for p in extension.permissions)
    ):
        return None
    return tuple(cast("list[HasScope]", extension.permissions))


def scopes_of(field: object) -> frozenset[str]:
    """The scopes a strawberry field's permission extensions require."""
    if not isinstance(field, StrawberryField):
        return frozenset()
    return frozenset(
        permission.scope
        for extension in field.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
        if isinstance(permission, HasScope)
    )


def guarded_fields(schema: GraphQLSchema, scope: str) -> Iterator[tuple[str, str]]:
    """(type, field) of every object field of `schema` that requires `scope`."""
    for type_name, named in schema.type_map.items():
        if not isinstance(named, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in named.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if scope in scopes_of(definition):
                yield type_name, field_name


def check_pii_fields(schema: GraphQLSchema) -> None:
    """Raise unless the fields guarded by customers:pii are exactly `PII_FIELDS`."""
    guarded = set(guarded_fields(schema, PII))
    listed = set(PII_FIELDS)
    if guarded != listed:
        raise RuntimeError(
            f"customers:pii fields differ from PII_FIELDS: guarded only {sorted(guarded - listed)},"
            f" listed only {sorted(listed - guarded)}"
        )
