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


def built_by_hook(field_type: Any, scalar_registry: Mapping[object, Any]) -> type | None:
    """The input class strawberry's convert_argument builds any value of this type with
    (optional or not), through the class's own `from_input` hook, after handing over None
    and UNSET as they are; None when it would do anything else."""
    if isinstance(field_type, StrawberryMaybe):
        return None
    if isinstance(field_type, StrawberryOptional):
        field_type = field_type.of_type
    if (
        not isinstance(field_type, type)
        or field_type is GlobalID
        or is_scalar(field_type, scalar_registry)
        or has_enum_definition(field_type)
        or not has_object_definition(field_type)
        or field_type.__strawberry_definition__.from_input is None
    ):
        return None
    return field_type
