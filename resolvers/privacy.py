"""The owner's rights in the schema: export and termination (scope ``owner``).

Access and portability: ``requestExport`` starts a background export, ``exports`` follows it and
gives its ``downloadUrl`` (``GET`` with an owner-scoped token; ``app.server.exports``).
Correction is ``updateProfile`` (``resolvers.owner``); deleting one mailbox and its cached mail
is ``disconnectAccount`` (``resolvers.connect``); ``terminateOwner`` ends everything. Nothing
here returns a credential, a token or a token digest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.models import ExportJob
from app.services import export as export_service
from app.services.errors import ServiceError
from app.services.termination import terminate_owner
from app.types import Action, ExportStatus
from resolvers.context import Context
from resolvers.ids import encode_id
from resolvers.owner import MutationError
from resolvers.permissions import requires

EXPORT_PATH = "/exports/"

strawberry.enum(
    ExportStatus,
    description="Where an export stands: PENDING, RUNNING, READY (downloadable), FAILED, or "
    "EXPIRED (past expiresAt; it is deleted soon).",
)


@strawberry.type(
    description="A data export: a zip with owner.json (profile, accounts, token metadata, usage "
    "log), manifest.json and every cached message as an .eml file."
)
class Export:
    id: strawberry.ID
    status: ExportStatus
    progress: float = strawberry.field(description="From 0 to 1: the share of messages written.")
    messages_total: int
    messages_done: int
    size_bytes: float | None = strawberry.field(description="Size of the zip once it is ready.")
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime = strawberry.field(
        description="When the export is deleted (24 hours after it is ready)."
    )
    download_url: str | None = strawberry.field(
        description="GET it with an owner-scoped token (Authorization: Bearer); null unless READY."
    )

    @classmethod
    def from_row(cls, row: ExportJob, base_url: str) -> Export:
        status = export_service.status_of(row)
        total, done = row.messages_total, row.messages_done
        progress = 1.0 if status == ExportStatus.READY else (done / total if total else 0.0)
        return cls(
            id=strawberry.ID(encode_id("Export", row.id)),
            status=status,
            progress=min(progress, 1.0),
            messages_total=total,
            messages_done=done,
            size_bytes=None if row.size_bytes is None else float(row.size_bytes),
            created_at=row.created_at,
            finished_at=row.finished_at,
            expires_at=row.expires_at,
            download_url=base_url + row.archive_id if status == ExportStatus.READY else None,
        )


@strawberry.type(description="An export was requested; follow it with `exports`.")
class ExportRequested:
    export: Export


@strawberry.type(description="The owner is terminated: tokens are revoked and sync stopped.")
class OwnerTermination:
    terminated_at: datetime
    purge_after: datetime = strawberry.field(
        description="Every row of the owner is deleted by the first purge after this time."
    )
    tokens_revoked: int
    accounts_stopped: int
    grants_revoked: int = strawberry.field(
        description="Accounts whose provider confirmed that our access is revoked (Gmail)."
    )


RequestExportResult = Annotated[
    ExportRequested | MutationError, strawberry.union("RequestExportResult")
]
TerminateOwnerResult = Annotated[
    OwnerTermination | MutationError, strawberry.union("TerminateOwnerResult")
]


def _download_base(info: strawberry.Info[Context, None]) -> str:
    return info.context.services.settings.public_url.rstrip("/") + EXPORT_PATH


@strawberry.type
class PrivacyQueries:
    @strawberry.field(
        extensions=requires(Action.OWNER),
        description="The owner's data exports, newest first, until the purge deletes them.",
    )
    async def exports(self, info: strawberry.Info[Context, None]) -> list[Export]:
        base = _download_base(info)
        return [
            Export.from_row(row, base)
            for row in await export_service.list_exports(info.context.owner_id)
        ]


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(
        extensions=requires(Action.OWNER),
        description="Export everything we hold about the owner (the accounts this token may "
        "touch) as a zip, built in the background; one export at a time.",
    )
    async def request_export(self, info: strawberry.Info[Context, None]) -> RequestExportResult:
        try:
            row = await export_service.request_export(info.context.require_principal())
        except ServiceError as error:
            return MutationError.from_service(error)
        return ExportRequested(export=Export.from_row(row, _download_base(info)))

    @strawberry.mutation(
        extensions=requires(Action.OWNER),
        description="Terminate the owner: every token stops working at once, sync stops, "
        "provider access is revoked where possible, and every row is deleted after the grace "
        "period. `confirm` must be the owner's email address.",
    )
    async def terminate_owner(
        self, info: strawberry.Info[Context, None], confirm: str
    ) -> TerminateOwnerResult:
        services = info.context.services
        try:
            done = await terminate_owner(
                services.settings,
                info.context.owner_id,
                confirm=confirm,
                authenticator=services.authenticator,
                events=services.events,
            )
        except ServiceError as error:
            return MutationError.from_service(error)
        return OwnerTermination(
            terminated_at=done.terminated_at,
            purge_after=done.purge_after,
            tokens_revoked=done.tokens_revoked,
            accounts_stopped=done.accounts_stopped,
            grants_revoked=done.grants_revoked,
        )
