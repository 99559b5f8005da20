"""What strawberry's argument conversion (`convert_argument`) leaves as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.base import StrawberryMaybe, StrawberryOptional, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition


def unchanged(field_type: Any, scalar_registry: Mapping[object, Any]) -> bool:
    """Whether strawberry's convert_argument returns any value of this type as it is: a
    scalar (but a GlobalID) or an enum member, optional or not."""
    if isinstance(field_type, StrawberryMaybe):
        return False
    if isinstance(field_type, StrawberryOptional):
        field_type = field_type.of_type
    if field_type is GlobalID or has_object_definition(field_type):
        return False
    return (
        is_scalar(field_type, scalar_registry)
        or has_enum_definition(field_type)
        or isinstance(field_type, StrawberryEnumDefinition)
    )
