"""The cache tables as the read path selects them: listings, columns and by-id statements.

Column 0 of every row is a tag (branch key or the row's own id); the GraphQL types unpack
the rest in the order written here (``Message.from_row``, ``Thread.from_row``, ...).
By-id statements join ``accounts`` to keep the caller's owner; callers also check that the
token may touch the row's account.

What the read side expects of the rows ``sync.apply`` writes:

- address columns and ``threads.participants``: JSON ``[{"name": ..., "email": ...}]``;
- ``messages.label_ids`` (shown as labels) and ``message_labels`` (filtered on) name the same
  folders: the provider ids of ``folders`` rows of the same account;
- datetimes written through Tortoise (on SQLite: UTC text, as keyset cursors compare it);
- ``threads.last_message_at`` set once a thread has a message (threads without it are not
  listed);
- ``message_bodies.headers``: JSON ``[[name, value], ...]``.

Search needs nothing: triggers (migration 0002) keep ``message_search`` current.
"""

from __future__ import annotations

from resolvers.lists import Listing

MESSAGE_COLUMNS = (
    "m.date, m.id, m.account_id, m.thread_id, m.provider_id, m.subject, m.from_addresses, "
    "m.to_addresses, m.cc_addresses, m.bcc_addresses, m.reply_to_addresses, m.snippet, "
    "m.unread, m.starred, m.draft, m.label_ids, m.has_attachments, m.size, "
    'm.message_id_header, m.in_reply_to, m."references"'
)
MESSAGES = Listing(kind="m", source="messages m", columns=MESSAGE_COLUMNS, key="m.date, m.id")

THREAD_COLUMNS = (
    "t.last_message_at, t.id, t.account_id, t.subject, t.snippet, t.participants, "
    "t.message_count, t.unread_count"
)
# A thread is listed once it has a message date (sync sets it with its first message).
THREADS = Listing(
    kind="t",
    source="threads t",
    columns=THREAD_COLUMNS,
    key="t.last_message_at, t.id",
    always="t.last_message_at IS NOT NULL",
)

FOLDER_COLUMNS = (
    "f.id, f.account_id, f.provider_id, f.name, f.role, f.parent_provider_id, f.total_count, "
    "f.unread_count"
)

ATTACHMENT_COLUMNS = (
    "a.id, a.message_id, a.filename, a.content_type, a.size, a.content_id, a.inline"
)


def by_id(columns: str, source: str, alias: str) -> str:
    """``SELECT {alias}.id, columns FROM source JOIN accounts ... WHERE owner AND id IN``; the
    two placeholders to fill are the owner and the id list (``{owner}``, ``{ids}``)."""
    return (
        f"SELECT {alias}.id, {columns} FROM {source} "  # noqa: S608 (constant text; values are parameters)
        f"JOIN accounts owner_account ON owner_account.id = {alias}.account_id "
        f"WHERE owner_account.owner_id = {{owner}} AND {alias}.id IN ({{ids}})"
    )


MESSAGES_BY_ID = by_id(MESSAGE_COLUMNS, "messages m", "m")
# A thread whose first message has not arrived yet (no last_message_at) is in no list; by id
# it is not found either, rather than half a thread.
THREADS_BY_ID = by_id(THREAD_COLUMNS, "threads t", "t") + " AND t.last_message_at IS NOT NULL"
FOLDERS_BY_ID = by_id(FOLDER_COLUMNS, "folders f", "f")
FOLDERS_OF_ACCOUNTS = (
    "SELECT f.account_id, {columns} FROM folders f WHERE f.account_id IN ({ids}) "
    "ORDER BY f.account_id, f.name, f.id"
).replace("{columns}", FOLDER_COLUMNS)
ATTACHMENTS_OF_MESSAGES = (
    f"SELECT a.message_id, {ATTACHMENT_COLUMNS} FROM attachments a "  # noqa: S608 (constant text; values are parameters)
    "WHERE a.message_id IN ({ids}) ORDER BY a.message_id, a.id"
)
