"""Scope checks: a field the key may not see resolves to null with a FORBIDDEN error."""

from __future__ import annotations

from typing import Any

from strawberry import Info
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from gateway.errors import Forbidden
from schema.context import GraphContext


class HasScope(BasePermission):
    """Grants access when the caller's API key carries `scope`."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.reason = f"this API key lacks the {scope} scope"
        self.message = self.reason

    def has_permission(self, source: Any, info: Info[GraphContext, None], **kwargs: Any) -> bool:
        return self.scope in info.context.caller.scopes

    def on_unauthorized(self) -> None:
        raise Forbidden(self.reason, scope=self.scope)


def needs(scope: str) -> list[FieldExtension]:
    """Field extensions that require `scope`."""
    return [PermissionExtension(permissions=[HasScope(scope)], use_directives=False)]
