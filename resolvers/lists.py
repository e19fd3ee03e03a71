"""Keyset windows of many lists in one statement: one branch per parent, each on its index.

A *branch* is one list: the messages of one account, of one thread, of one folder... Each
branch is its own ``SELECT ... ORDER BY key LIMIT n`` (so each walks its own index and stops
after n rows, however large the account), tagged with the branch key in column 0, and the
branches are joined with UNION ALL. Edges of many parents (the latest messages of 25 threads)
cost one statement; a list over several accounts is the branches merged in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resolvers.pagination import PageRequest
from resolvers.sql import Row, Statement, dialect

Condition = Callable[[Statement], str]
Where = Callable[[Statement], list[str]]

# SQLite allows 500 terms in a compound SELECT; DataLoader batches stay below this too.
MAX_BRANCHES = 100


@dataclass(frozen=True, slots=True)
class Listing:
    """A table as a list: cursor kind, source, selected columns and sort key."""

    kind: str
    source: str
    columns: str
    key: str
    always: str | None = None


@dataclass(frozen=True, slots=True)
class Branch:
    key: int
    condition: Condition


def account_branches(column: str, account_ids: Sequence[int]) -> list[Branch]:
    """One branch per account (each walks its own index), or one IN list when too many."""
    if len(account_ids) > MAX_BRANCHES:

        def within(sql: Statement) -> str:
            return f"{column} IN ({sql.each(account_ids)})"

        return [Branch(0, within)]
    return [_equals(column, number) for number in account_ids]


def _equals(column: str, number: int) -> Branch:
    def condition(sql: Statement) -> str:
        return f"{column} = {sql(number)}"

    return Branch(number, condition)


def _branch_sql(
    sql: Statement, listing: Listing, branch: Branch, where: Where, page: PageRequest | None
) -> str:
    # SQLite numbers "?" by position: parameters are added in the order the text reads.
    tag = f"CAST({sql(branch.key)} AS BIGINT)"
    selected = listing.columns if page is not None else "COUNT(*)"
    conditions = [branch.condition(sql), *where(sql)]
    if listing.always:
        conditions.append(listing.always)
    tail = ""
    if page is not None:
        conditions += page.where(sql, listing.key)
        tail = f" ORDER BY {page.order_by(listing.key)} LIMIT {sql(page.fetch)}"
    return (
        f"SELECT {tag} AS branch, {selected} FROM {listing.source} "  # noqa: S608 (constant text; values are parameters)
        f"WHERE {' AND '.join(conditions)}{tail}"
    )


def union_sql(
    sql: Statement,
    listing: Listing,
    branches: Sequence[Branch],
    where: Where,
    page: PageRequest | None,
) -> str:
    """The statement of these branches: each its own window, joined with UNION ALL (or the
    count of each, without a page)."""
    if len(branches) == 1:
        return _branch_sql(sql, listing, branches[0], where, page)
    return " UNION ALL ".join(
        f"SELECT * FROM ({_branch_sql(sql, listing, branch, where, page)}) AS b{n}"  # noqa: S608 (constant text; values are parameters)
        for n, branch in enumerate(branches)
    )


async def fetch_windows(
    listing: Listing, branches: Sequence[Branch], where: Where, page: PageRequest
) -> dict[int, list[Row]]:
    """Each branch's window (up to ``page.fetch`` rows, in fetch order), by branch key."""
    found: dict[int, list[Row]] = {branch.key: [] for branch in branches}
    for start in range(0, len(branches), MAX_BRANCHES):
        sql = Statement(dialect())
        chunk = branches[start : start + MAX_BRANCHES]
        text = union_sql(sql, listing, chunk, where, page)
        for row in await sql.rows(text):
            found[row[0]].append(row)
    return found


async def fetch_merged(
    listing: Listing, branches: Sequence[Branch], where: Where, page: PageRequest
) -> list[Row]:
    """One window over all branches together (e.g. the messages of several accounts)."""
    if not branches:
        return []
    sql = Statement(dialect())
    text = union_sql(sql, listing, branches, where, page)
    if len(branches) > 1:
        direction = "ASC" if page.from_end else "DESC"
        text = (
            f"SELECT * FROM ({text}) AS merged ORDER BY 2 {direction}, 3 {direction} "  # noqa: S608 (constant text; values are parameters)
            f"LIMIT {sql(page.fetch)}"
        )
    return await sql.rows(text)


async def count_rows(listing: Listing, branches: Sequence[Branch], where: Where) -> dict[int, int]:
    """How many rows each branch holds (no page)."""
    counts: dict[int, int] = {branch.key: 0 for branch in branches}
    for start in range(0, len(branches), MAX_BRANCHES):
        sql = Statement(dialect())
        chunk = branches[start : start + MAX_BRANCHES]
        text = union_sql(sql, listing, chunk, where, None)
        for row in await sql.rows(text):
            counts[row[0]] += int(row[1])
    return counts
