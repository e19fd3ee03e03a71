"""Which accounts a request may read: the owner's accounts that the token may touch.

Every list starts here, so a message of another owner, or of an account outside the token, is
never selected at all; the answer is computed once per request and shared.
"""

from __future__ import annotations

from resolvers.context import Context
from resolvers.loaders import once
from resolvers.sql import Statement, dialect


async def readable_accounts(context: Context, wanted: int | None = None) -> list[int]:
    """Ids of the readable accounts (only ``wanted``, when given), ascending."""
    principal = context.require_principal()
    if wanted is not None and not principal.may_touch(wanted):
        return []

    async def compute() -> list[int]:
        sql = Statement(dialect())
        conditions = [f"owner_id = {sql(principal.owner_id)}"]
        if wanted is not None:
            conditions.append(f"id = {sql(wanted)}")
        elif principal.account_ids is not None:
            if not principal.account_ids:
                return []
            conditions.append(f"id IN ({sql.each(sorted(principal.account_ids))})")
        rows = await sql.rows(
            f"SELECT id FROM accounts WHERE {' AND '.join(conditions)} ORDER BY id"  # noqa: S608 (constant text; values are parameters)
        )
        return [int(row[0]) for row in rows]

    return await once(context, f"readable_accounts:{wanted}", compute)
