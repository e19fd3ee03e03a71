"""Field-level scope checks, visible in schema.graphql as ``@requiresScope(scope: ...)``.

Each scoped field carries ``HasScope(action)`` through Strawberry's PermissionExtension; a token
without the action gets FORBIDDEN naming the missing scope, and no data for that field.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from app.types import Action


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requiresScope",
    description="The token scope (action) this field needs.",
)
class RequiresScope:
    scope: str


class HasScope(BasePermission):
    """Grants the field when the caller's token holds ``action``."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.message = f"This needs the scope {action.value}."
        self.error_extensions = {"code": "FORBIDDEN", "missingScope": action.value}

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and self.action in principal.actions

    @property
    def schema_directive(self) -> object:
        return RequiresScope(scope=self.action.value)


def requires(action: Action) -> list[FieldExtension]:
    """The field extensions of a field that needs ``action``."""
    return [PermissionExtension(permissions=[HasScope(action)], fail_silently=False)]
