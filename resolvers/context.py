"""The per-request GraphQL context: who is calling and the process-wide services.

Built by the server for every HTTP request and WebSocket connection; DataLoaders live here so
they cache within one request only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.auth.authenticator import TokenAuthenticator
from app.auth.principal import Principal
from app.events import EventBus
from app.services.change_tail import ChangeTail
from app.services.errors import Forbidden
from app.settings import Settings
from app.types import Action, OwnerId
from resolvers.compiled.paths import ExecutionPaths


@dataclass(slots=True)
class Services:
    """Process-wide collaborators the resolvers need."""

    settings: Settings
    authenticator: TokenAuthenticator
    events: EventBus
    changes: ChangeTail = field(init=False)
    execution_paths: ExecutionPaths = field(default_factory=ExecutionPaths)

    def __post_init__(self) -> None:
        self.changes = ChangeTail(self.events)


@dataclass(slots=True)
class Context:
    """What every resolver receives as ``info.context``."""

    services: Services
    principal: Principal | None
    request: Any = None
    loaders: dict[str, Any] = field(default_factory=dict)
    connection_params: Any = None

    @property
    def owner_id(self) -> OwnerId:
        return self.require_principal().owner_id

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Forbidden("authentication required")
        return self.principal

    def require(self, action: Action) -> Principal:
        principal = self.require_principal()
        if action not in principal.actions:
            raise Forbidden(f"This needs the scope {action.value}.", missing=action.value)
        return principal
