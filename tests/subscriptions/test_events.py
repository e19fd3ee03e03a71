"""What subscribers receive: their accounts only, every kind, resumable, GAP after a purge."""

from __future__ import annotations

import asyncio

from app.models import ChangeLogEntry, Message
from app.services.token_sources import mark_needs_reauth
from app.types import AccountId, Action
from resolvers.ids import encode_id
from tests.factories import make_owner, make_token
from tests.subscriptions.conftest import (
    LiveServerFactory,
    NodeSubscriber,
    deliver,
    gql_subscription,
    listening,
    mark_read,
    new_account,
    remove,
)

EVENTS = """
subscription Mail($accountIds: [ID!], $after: String) {
  messageEvents(accountIds: $accountIds, after: $after) {
    id cursor kind accountId messageId
    message { subject unread }
  }
}
"""


async def message_id(provider_id: str) -> str:
    row = await Message.get(provider_id=provider_id)
    return encode_id("Message", row.id)


async def test_a_token_scoped_to_one_account_never_sees_another(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    mine, theirs = await new_account(made.owner.id), await new_account(made.owner.id)
    scoped = await make_token(made.owner, actions={Action.MESSAGES_METADATA}, account_ids=[mine.id])
    async with (
        live_server() as server,
        gql_subscription(
            server, made.token, EVENTS, accountIds=[encode_id("Account", mine.id)]
        ) as narrowed,
        gql_subscription(server, scoped, EVENTS) as scoped_events,
    ):
        await deliver(server.services, theirs, "theirs-1")
        await deliver(server.services, mine, "mine-1")
        # Events come in change-log order: had the other account's arrived, it would be first.
        for next_event in (narrowed, scoped_events):
            event = await next_event()
            assert event["accountId"] == encode_id("Account", mine.id)
            assert event["messageId"] == await message_id("mine-1")


async def test_added_changed_and_deleted_messages_each_make_an_event(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    async with live_server() as server, gql_subscription(server, made.token, EVENTS) as events:
        await deliver(server.services, account, "kinds-1")
        added = await events()
        await mark_read(server.services, account, "kinds-1")
        changed = await events()
        expected_id = await message_id("kinds-1")
        await remove(server.services, account, "kinds-1")
        deleted = await events()
    assert [e["kind"] for e in (added, changed, deleted)] == [
        "MESSAGE_ADDED",
        "MESSAGE_CHANGED",
        "MESSAGE_DELETED",
    ]
    assert {e["messageId"] for e in (added, changed, deleted)} == {expected_id}
    assert len({e["id"] for e in (added, changed, deleted)}) == 3
    # The message is read as the event is sent: its state then, with the caller's scopes.
    assert added["message"] == {"subject": "Subject kinds-1", "unread": True}
    assert changed["message"] == {"subject": "Subject kinds-1", "unread": False}
    assert deleted["message"] is None


async def test_the_message_is_resolved_with_the_tokens_scopes(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    metadata_only = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    query = "subscription { messageEvents { kind message { subject textBody } } }"
    async with live_server() as server:
        results = []
        for token in (made.token, metadata_only):
            async with gql_subscription(server, token, query) as events:
                await deliver(server.services, account, f"scoped-{len(results)}")
                try:
                    results.append(await events())
                except Exception as error:  # gql raises on a result with errors
                    results.append({"error": getattr(error, "errors", str(error))})
    assert results[0]["message"]["subject"] == "Subject scoped-0"
    errors = results[1]["error"]
    assert [e["extensions"]["missingScope"] for e in errors] == ["messages:content"]
    assert errors[0]["path"] == ["messageEvents", "message", "textBody"]


async def test_account_status_changes_reach_account_event_subscribers(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    query = "subscription { accountEvents { kind accountId status reason account { status } } }"
    async with live_server() as server, gql_subscription(server, made.token, query) as events:
        await deliver(server.services, account, "not-an-account-event")
        await mark_needs_reauth(AccountId(account.id), "INVALID_GRANT", server.services.events)
        event = await events()
    assert event == {
        "kind": "ACCOUNT_STATUS",
        "accountId": encode_id("Account", account.id),
        "status": "NEEDS_REAUTH",
        "reason": "INVALID_GRANT",
        "account": {"status": "NEEDS_REAUTH"},
    }


async def test_a_client_resumes_after_its_last_cursor_without_gaps_or_duplicates(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    async with live_server() as server:
        async with await NodeSubscriber.start(server.url, made.token, EVENTS) as client:
            await client.wait_for("connected")
            await listening(server)
            await deliver(server.services, account, "resume-0")
            last = (await client.wait_for("next"))["payload"]["data"]["messageEvents"]
        missed = [f"resume-{n}" for n in range(1, 4)]
        await deliver(server.services, account, *missed[:2])
        await deliver(server.services, account, missed[2])

        async with await NodeSubscriber.start(
            server.url, made.token, EVENTS, {"after": last["cursor"]}
        ) as client:
            replayed = [
                (await client.wait_for("next"))["payload"]["data"]["messageEvents"] for _ in missed
            ]
            await deliver(server.services, account, "resume-4")
            live = (await client.wait_for("next"))["payload"]["data"]["messageEvents"]
            await asyncio.sleep(0.2)
            assert not [r for r in client.records if r["event"] in ("next", "error")][4:]
    expected = [await message_id(pid) for pid in [*missed, "resume-4"]]
    assert [e["messageId"] for e in [*replayed, live]] == expected
    assert [e["message"]["subject"] for e in replayed] == [f"Subject {pid}" for pid in missed]


async def test_a_cursor_older_than_the_retained_log_starts_with_a_gap(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    async with live_server() as server:
        async with gql_subscription(server, made.token, EVENTS) as events:
            await deliver(server.services, account, "gap-0")
            cursor = (await events())["cursor"]
        await deliver(server.services, account, "gap-1")
        kept = await deliver(server.services, account, "gap-2")
        # The purge removed everything of this account before gap-2.
        await ChangeLogEntry.filter(account_id=account.id, id__lt=kept.change_id).delete()

        async with gql_subscription(server, made.token, EVENTS, after=cursor) as events:
            gap, retained = await events(), await events()
    assert gap["kind"] == "GAP"
    assert gap["accountId"] == encode_id("Account", account.id)
    assert (gap["messageId"], gap["message"], gap["cursor"]) == (None, None, cursor)
    assert retained["messageId"] == await message_id("gap-2")
