"""Full-text search over cached messages: subject, addresses, snippet and text body.

Both databases keep one search document per message in a table ``message_search``, kept
current by TRIGGERS on ``messages`` and ``message_bodies``: whoever writes those tables
(``sync.apply``, the fetch-through of bodies) calls nothing extra.

- SQLite: an FTS5 table (columns subject, addresses, body; rowid = messages.id). It stores its
  own copy of the indexed text: contentless tables cannot delete rows before SQLite 3.43.
- PostgreSQL: a table of ``tsvector`` documents (config ``simple``: no stemming, mail is
  multilingual) with a GIN index; the subject weighs A. Addresses are indexed whole
  (``alice@example.com``) and split (``alice example com``).

Addresses are JSON arrays of ``{"name": ..., "email": ...}``. Bodies longer than 200,000
characters are indexed up to that length (a tsvector is limited to 1 MB).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

_ADDRESS_COLUMNS = ("from_addresses", "to_addresses", "cc_addresses", "bcc_addresses")
_WATCHED_COLUMNS = ("subject", "snippet", *_ADDRESS_COLUMNS)
_BODY_LIMIT = 200_000


class DialectSQL(ops.RunSQL):
    """RunSQL with one list of statements per dialect, each run as one statement.

    Tortoise's SQLite editor splits scripts on ";", which would cut trigger bodies apart.
    """

    def __init__(self, forward: dict[str, list[str]], reverse: dict[str, list[str]]) -> None:
        super().__init__(forward, reverse)

    async def _run_sql(self, state_editor, sqls) -> None:
        for statement in sqls[state_editor.DIALECT]:
            if state_editor.collect_sql:
                state_editor.collected_sql.append(statement)
            else:
                await state_editor.client.execute_query(statement)


def _sqlite_addresses(row: str) -> str:
    arrays = " UNION ALL ".join(
        f"SELECT value FROM json_each(CASE WHEN json_valid({row}.{c}) THEN {row}.{c} ELSE '[]' END)"
        for c in _ADDRESS_COLUMNS
    )
    return (
        "(SELECT coalesce(group_concat(coalesce(json_extract(a.value, '$.name'), '') || ' ' || "
        f"coalesce(json_extract(a.value, '$.email'), ''), ' '), '') FROM ({arrays}) a)"
    )


def _sqlite_insert(where: str) -> str:
    return (
        "INSERT INTO message_search(rowid, subject, addresses, body) "
        f"SELECT m.id, m.subject, {_sqlite_addresses('m')}, m.snippet || ' ' || "
        f"coalesce(substr((SELECT b.text_body FROM message_bodies b WHERE b.message_id = m.id), "
        f"1, {_BODY_LIMIT}), '') FROM messages m{where}"
    )


def _sqlite_refresh(message_id: str) -> list[str]:
    return [
        f"DELETE FROM message_search WHERE rowid = {message_id}",
        _sqlite_insert(f" WHERE m.id = {message_id}"),
    ]


def _sqlite_trigger(name: str, event: str, message_id: str, when: str = "") -> str:
    body = ";\n  ".join(_sqlite_refresh(message_id))
    return f"CREATE TRIGGER {name} AFTER {event} {when}\nBEGIN\n  {body};\nEND"


_SQLITE_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _WATCHED_COLUMNS)

SQLITE = [
    "CREATE VIRTUAL TABLE message_search USING fts5("
    "subject, addresses, body, tokenize = 'unicode61 remove_diacritics 2')",
    _sqlite_trigger("message_search_message_insert", "INSERT ON messages", "NEW.id"),
    _sqlite_trigger(
        "message_search_message_update",
        f"UPDATE OF {', '.join(_WATCHED_COLUMNS)} ON messages",
        "NEW.id",
        f"WHEN {_SQLITE_CHANGED}",
    ),
    "CREATE TRIGGER message_search_message_delete AFTER DELETE ON messages\n"
    "BEGIN\n  DELETE FROM message_search WHERE rowid = OLD.id;\nEND",
    _sqlite_trigger("message_search_body_insert", "INSERT ON message_bodies", "NEW.message_id"),
    _sqlite_trigger(
        "message_search_body_update",
        "UPDATE OF text_body ON message_bodies",
        "NEW.message_id",
        "WHEN OLD.text_body IS NOT NEW.text_body",
    ),
    _sqlite_trigger("message_search_body_delete", "DELETE ON message_bodies", "OLD.message_id"),
    _sqlite_insert(""),
]

SQLITE_REVERSE = [
    *(
        f"DROP TRIGGER IF EXISTS message_search_{name}"
        for name in (
            "message_insert",
            "message_update",
            "message_delete",
            "body_insert",
            "body_update",
            "body_delete",
        )
    ),
    "DROP TABLE IF EXISTS message_search",
]


def _postgres_addresses() -> str:
    arrays = " || ".join(
        f"(CASE WHEN jsonb_typeof(m.{c}) = 'array' THEN m.{c} ELSE '[]'::jsonb END)"
        for c in _ADDRESS_COLUMNS
    )
    return (
        "(SELECT coalesce(string_agg(coalesce(a->>'name', '') || ' ' || coalesce(a->>'email', '') "
        "|| ' ' || translate(coalesce(a->>'email', ''), '@.', '  '), ' '), '') "
        f"FROM jsonb_array_elements({arrays}) a)"
    )


_POSTGRES_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _WATCHED_COLUMNS)

POSTGRES = [
    "CREATE TABLE message_search ("
    "message_id BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE, "
    "document tsvector NOT NULL)",
    "CREATE INDEX message_search_document ON message_search USING GIN (document)",
    "CREATE FUNCTION message_search_refresh(target BIGINT) RETURNS void LANGUAGE sql AS $$ "
    "INSERT INTO message_search(message_id, document) "
    "SELECT m.id, setweight(to_tsvector('simple', coalesce(m.subject, '')), 'A') "
    f"|| to_tsvector('simple', {_postgres_addresses()}) "
    "|| to_tsvector('simple', coalesce(m.snippet, '') || ' ' "
    f"|| left(coalesce(b.text_body, ''), {_BODY_LIMIT})) "
    "FROM messages m LEFT JOIN message_bodies b ON b.message_id = m.id WHERE m.id = target "
    "ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document $$",
    "CREATE FUNCTION message_search_on_message() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN PERFORM message_search_refresh(NEW.id); RETURN NULL; END $$",
    "CREATE FUNCTION message_search_on_body() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF TG_OP = 'DELETE' THEN PERFORM message_search_refresh(OLD.message_id); "
    "ELSE PERFORM message_search_refresh(NEW.message_id); END IF; RETURN NULL; END $$",
    "CREATE TRIGGER message_search_message_insert AFTER INSERT ON messages "
    "FOR EACH ROW EXECUTE FUNCTION message_search_on_message()",
    f"CREATE TRIGGER message_search_message_update AFTER UPDATE OF {', '.join(_WATCHED_COLUMNS)} "
    f"ON messages FOR EACH ROW WHEN ({_POSTGRES_CHANGED}) "
    "EXECUTE FUNCTION message_search_on_message()",
    "CREATE TRIGGER message_search_body_change AFTER INSERT OR DELETE OR UPDATE OF text_body "
    "ON message_bodies FOR EACH ROW EXECUTE FUNCTION message_search_on_body()",
    "SELECT message_search_refresh(id) FROM messages",
]

POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS message_search_body_change ON message_bodies",
    "DROP TRIGGER IF EXISTS message_search_message_update ON messages",
    "DROP TRIGGER IF EXISTS message_search_message_insert ON messages",
    "DROP FUNCTION IF EXISTS message_search_on_body()",
    "DROP FUNCTION IF EXISTS message_search_on_message()",
    "DROP FUNCTION IF EXISTS message_search_refresh(BIGINT)",
    "DROP TABLE IF EXISTS message_search",
]


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [
        DialectSQL(
            {"sqlite": SQLITE, "postgres": POSTGRES},
            {"sqlite": SQLITE_REVERSE, "postgres": POSTGRES_REVERSE},
        ),
    ]
