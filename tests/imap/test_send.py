"""``sendMessage`` for IMAP accounts: SMTP to a local sink, the Sent copy APPENDed to Dovecot.

Through the API of a live server (its writer builds the SMTP sender from the account row and the
vault): a message reaches the sink once per idempotency key, over implicit TLS and STARTTLS,
with the headers the caller gave and no Bcc header in what was transmitted; the copy lands in
\\Sent flagged \\Seen and in the cache, and a subscriber hears of it; a reply carries
In-Reply-To/References and joins its thread. Header injection, a wrong SMTP password, an account
without SMTP and an unconfirmed transfer each answer a typed error, and neither password ever
reaches a log line or an answer.
"""

from __future__ import annotations

import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from app.models import Account, Message
from app.types import AccountStatus
from emulators.runner import free_port
from resolvers.ids import encode_id
from sync.providers.errors import ProviderError
from sync.providers.imap_connection import Security
from sync.providers.smtp import NotSent, SmtpEndpoint, SmtpSender
from tests import test_canary
from tests.imap import test_actions
from tests.imap.test_actions import (
    CONNECT,
    MESSAGE_EVENTS,
    Connected,
    assert_cache_is_the_server,
    events_for,
    last_change,
    mail,
)
from tests.subscriptions.conftest import gql_subscription
from tests.support.dovecot import Dovecot
from tests.support.smtp_sink import SmtpSink
from tests.sync.test_send import SEND
from tests.test_canary import _forms, _raw_database
from vault import Secret

# The fixtures this module shares, by name.
connected = test_actions.connected
live_server = test_actions.live_server
ring = test_actions.ring
smtp_security = test_actions.smtp_security
server_settings = test_actions.server_settings
smtp_password_stored = test_actions.smtp_password_stored
every_log_record = test_canary.every_log_record


def draft(connected: Connected, key: str, **more: Any) -> dict[str, Any]:
    return {
        "accountId": encode_id("Account", connected.account.id),
        "idempotencyKey": key,
        "to": [{"email": "friend@example.com", "name": "A Friend"}],
        "cc": [{"email": "copy@example.com"}],
        "bcc": [{"email": "hidden@example.com"}],
        "subject": "Grüße from IMAP",
        "textBody": "hello über SMTP",
        **more,
    }


async def send(connected: Connected, payload: dict[str, Any]) -> dict[str, Any]:
    body = await connected.call(SEND, input=payload)
    answer: dict[str, Any] = body["data"]["sendMessage"]
    return answer


def sent_folder(connected: Connected) -> dict[int, tuple[frozenset[str], bytes]]:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        return other.fetch_all("Sent")


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.parametrize("smtp_security", ["tls", "starttls"])
async def test_a_send_is_delivered_once_and_filed_in_sent(
    connected: Connected, smtp_security: str
) -> None:
    sink, account = connected.sink, connected.account
    account_id = encode_id("Account", account.id)
    async with gql_subscription(
        connected.server, connected.token, MESSAGE_EVENTS, accountIds=[account_id]
    ) as next_event:
        last = await last_change(account)
        first = await send(connected, draft(connected, "key-1"))
        assert (first["__typename"], first["duplicate"]) == ("MessageSent", False), first
        assert await events_for(next_event, account, last) == ["MESSAGE_ADDED"]

    again = await send(connected, draft(connected, "key-1"))
    assert again == {**first, "duplicate": True}

    assert len(sink.received) == 1
    delivered = sink.received[0]
    assert delivered.mail_from == connected.mailbox.user
    assert delivered.rcpt_tos == ("friend@example.com", "copy@example.com", "hidden@example.com")
    transmitted = parsed(delivered.data)
    assert transmitted["Message-ID"] == first["messageIdHeader"]
    assert transmitted["From"] == connected.mailbox.user
    assert transmitted["To"] == "A Friend <friend@example.com>"
    assert transmitted["Cc"] == "copy@example.com"
    assert transmitted["Subject"] == "Grüße from IMAP"
    assert transmitted["Bcc"] is None  # recipients never see the blind copies
    assert b"hidden@example.com" not in delivered.data
    assert transmitted.get_content().strip() == "hello über SMTP"
    assert [login for login, accepted in sink.logins if accepted] == [
        f"smtp-{connected.mailbox.user}"
    ]

    copies = sent_folder(connected)
    assert len(copies) == 1
    ((uid, (flags, raw)),) = copies.items()
    assert "\\Seen" in flags
    assert parsed(raw)["Message-ID"] == first["messageIdHeader"]
    assert parsed(raw)["Bcc"] == "hidden@example.com"  # the sender's copy keeps them
    cached = await Message.get(account_id=account.id, provider_id=first["providerMessageId"])
    assert first["providerMessageId"].endswith(f":{uid}:Sent")
    assert (cached.unread, cached.label_ids, cached.subject) == (False, ["Sent"], "Grüße from IMAP")
    assert cached.message_id_header == first["messageIdHeader"]
    await assert_cache_is_the_server(connected)


async def test_a_reply_is_threaded(connected: Connected) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        other.append("INBOX", mail("question", References="<root@example.org>"))
    await connected.sync()
    original = await connected.message("question")

    reply = await send(
        connected,
        draft(
            connected,
            "reply-1",
            subject="Re: question",
            replyToId=encode_id("Message", original.id),
        ),
    )

    assert reply["__typename"] == "MessageSent", reply
    transmitted = parsed(connected.sink.received[0].data)
    assert transmitted["In-Reply-To"] == original.message_id_header
    assert transmitted["References"] == f"<root@example.org> {original.message_id_header}"
    cached = await Message.get(
        account_id=connected.account.id, provider_id=reply["providerMessageId"]
    )
    assert cached.thread_id == original.thread_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"to": [{"email": "friend@example.com", "name": "A\nBcc: v@example.com"}]}, "to[0].name"),
        ({"cc": [{"email": "copy@example.com\r\nBcc: v@example.com"}]}, "cc[0].email"),
        ({"bcc": [{"email": "a@example.com, b@example.com"}]}, "bcc[0].email"),
    ],
)
async def test_header_injection_is_refused_and_nothing_is_sent(
    connected: Connected, change: dict[str, Any], field: str
) -> None:
    refused = await send(connected, draft(connected, "k", **change))

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "MutationError",
        "BAD_USER_INPUT",
        field,
    )
    assert connected.sink.received == []
    assert connected.sink.logins == []  # the SMTP server never heard of it
    assert sent_folder(connected) == {}


async def test_a_wrong_smtp_password_is_typed_and_not_retried(
    connected: Connected,
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    sink = connected.sink
    user = f"smtp-{connected.mailbox.user}"
    stored_password = sink.users[user]
    sink.users[user] = new_password = "changed-at-the-provider-" + stored_password

    failures = [await send(connected, draft(connected, f"k{n}")) for n in range(3)]

    for failed in failures:
        assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
        assert "SMTP_LOGIN" in failed["message"]
    assert sink.logins == [(user, False)]  # one attempt; later sends do not knock again
    assert sink.received == []
    assert sent_folder(connected) == {}
    account = await Account.get(id=connected.account.id)
    assert account.status is AccountStatus.ACTIVE  # reading mail over IMAP is unaffected
    # Nothing was sent, so the keys are free: with the new password stored, "k0" sends.
    await reconnect_smtp(connected, new_password)
    assert (await send(connected, draft(connected, "k0")))["__typename"] == "MessageSent"
    assert len(sink.received) == 1
    assert sink.logins[1:] == [(user, True)]

    secrets = [stored_password, new_password, connected.mailbox.password]
    logged = "\n".join(record.getMessage() for record in every_log_record.records).encode()
    assert every_log_record.records  # the capture is live
    assert not [form for secret in secrets for form in _forms(secret) if form in logged]
    dump = await _raw_database(connected.settings)
    assert connected.mailbox.user.encode() in dump  # the dump is real
    assert not [form for form in _forms(new_password) if form in dump]


async def reconnect_smtp(connected: Connected, smtp_password: str) -> None:
    """``connectImap`` again with a new SMTP password: what an owner does after changing it
    at the provider (a refused password is not tried again for a while; a new one at once)."""
    mailbox, sink = connected.mailbox, connected.sink
    body = await connected.call(
        CONNECT,
        input={
            "imap": {
                "host": mailbox.server.host,
                "port": mailbox.server.imaps_port,
                "security": "TLS",
                "username": mailbox.user,
            },
            "password": mailbox.password,
            "smtp": sink.settings(f"smtp-{mailbox.user}"),
            "smtpPassword": smtp_password,
        },
    )
    assert body["data"]["connectImap"]["__typename"] == "ImapConnected", body


async def test_a_lost_answer_to_data_keeps_the_key_from_sending_twice(
    connected: Connected,
) -> None:
    connected.sink.lose_answers = 1

    unknown = await send(connected, draft(connected, "maybe"))
    retried = await send(connected, draft(connected, "maybe"))

    assert (unknown["code"], "SMTP_UNCONFIRMED" in unknown["message"]) == ("PROVIDER_ERROR", True)
    assert retried["code"] == "CONFLICT"
    assert len(connected.sink.received) == 1  # the server has it once, and only once


async def test_an_account_without_smtp_cannot_send(connected: Connected) -> None:
    account = await Account.get(id=connected.account.id)
    account.provider_settings = {**account.provider_settings, "smtp": None}
    await account.save(update_fields=["provider_settings"])

    refused = await send(connected, draft(connected, "no-smtp"))

    assert (refused["code"], refused["field"]) == ("BAD_USER_INPUT", "accountId")
    assert "SMTP" in refused["message"]
    assert connected.sink.received == []


async def test_plaintext_smtp_is_refused_before_connecting() -> None:
    port = free_port()  # nothing listens: a connection attempt would be SMTP_CONNECT
    sender = SmtpSender(SmtpEndpoint("127.0.0.1", port, Security.PLAIN, "user"), Secret("pw"))
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhi\r\n"
    with pytest.raises(NotSent) as refused:
        await sender.send(raw)
    assert refused.value.code == "PLAINTEXT_REFUSED"
    assert isinstance(refused.value, ProviderError)


@pytest.mark.parametrize("smtp_password_stored", [False])
async def test_the_imap_password_serves_when_smtp_has_none_of_its_own(
    connected: Connected, smtp_password_stored: bool
) -> None:
    sent = await send(connected, draft(connected, "same-password"))

    assert sent["__typename"] == "MessageSent", sent
    assert [accepted for _, accepted in connected.sink.logins] == [True]
    assert len(connected.sink.received) == 1


@pytest.mark.parametrize(
    ("smtp_security", "server_settings"), [("plain", {"imap_allow_plaintext_loopback": True})]
)
async def test_plaintext_smtp_only_to_loopback_where_the_operator_allows_it(
    connected: Connected, smtp_security: str, server_settings: dict[str, Any]
) -> None:
    sent = await send(connected, draft(connected, "loopback"))

    assert sent["__typename"] == "MessageSent", sent
    assert len(connected.sink.received) == 1


async def test_plaintext_smtp_is_refused_where_the_operator_does_not_allow_it(
    connected: Connected,
) -> None:
    mailbox, sink = connected.mailbox, connected.sink
    imap = {
        "host": mailbox.server.host,
        "port": mailbox.server.imaps_port,
        "security": "TLS",
        "username": mailbox.user,
    }
    plain = {**sink.settings("someone"), "security": "PLAIN"}
    body = await connected.call(
        CONNECT, input={"imap": imap, "password": mailbox.password, "smtp": plain}
    )
    assert body["data"]["connectImap"]["code"] == "PLAINTEXT_REFUSED"
    # A plain setting saved while the operator allowed it is refused once they no longer do.
    account = await Account.get(id=connected.account.id)
    smtp = {**account.provider_settings["smtp"], "security": "plain"}
    account.provider_settings = {**account.provider_settings, "smtp": smtp}
    await account.save(update_fields=["provider_settings"])

    refused = await send(connected, draft(connected, "plain"))

    assert (refused["code"], "PLAINTEXT_REFUSED" in refused["message"]) == ("PROVIDER_ERROR", True)
    assert sink.logins == []
    assert sink.received == []


@pytest.mark.parametrize("server_settings", [{"sends_per_minute": 2}])
async def test_sends_are_rate_limited_per_account(
    connected: Connected, server_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.services.send._now", lambda: 1000.0)  # no refill

    answers = [await send(connected, draft(connected, f"r{n}")) for n in range(3)]

    assert [a["__typename"] for a in answers] == ["MessageSent", "MessageSent", "MutationError"]
    assert answers[2]["code"] == "RATE_LIMITED"
    assert len(connected.sink.received) == 2


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
async def test_an_untrusted_smtp_certificate_is_a_tls_error_before_any_login(
    dovecot: Dovecot, security: Security
) -> None:
    sink = await SmtpSink.start(dovecot.tls, security=security.value)
    sink.users["someone"] = "secret-pw"
    try:
        sender = SmtpSender(
            SmtpEndpoint("127.0.0.1", sink.port, security, "someone"),
            Secret("secret-pw"),
            ssl_context=ssl.create_default_context(),  # the system's CAs, not the test CA
        )
        with pytest.raises(NotSent) as refused:
            await sender.send(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n")
    finally:
        await sink.stop()
    assert refused.value.code == "SMTP_TLS"
    assert (sink.logins, sink.received) == ([], [])
