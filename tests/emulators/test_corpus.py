"""emulators.corpus: deterministic, realistic, and (on request) broken mail."""

from __future__ import annotations

import random
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from emulators.corpus import Defect, MessageKind, make_broken_message, make_mailbox, make_message


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert make_mailbox(7, 40) == make_mailbox(7, 40)
    assert make_mailbox(7, 40) != make_mailbox(8, 40)


def test_every_message_parses_cleanly_with_the_headers_mail_needs() -> None:
    for raw in make_mailbox(3, 60):
        message = parse(raw)
        assert not message.defects
        assert all(not part.defects for part in message.walk())
        for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert message[header], header
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_non_ascii_names_and_subjects_are_rfc2047_encoded_on_the_wire() -> None:
    rng = random.Random(1)
    raw = make_message(
        rng,
        kind=MessageKind.PLAIN,
        sender=("Zoë Müller", "zoe@example.de"),
        recipients=[("田中 太郎", "taro@example.jp")],
        subject="日本語の件名 🎉",
    )
    head = raw.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert b"=?utf-8?" in head
    message = parse(raw)
    assert str(message["Subject"]) == "日本語の件名 🎉"
    assert message["From"].addresses[0].display_name == "Zoë Müller"
    assert message["To"].addresses[0].display_name == "田中 太郎"


@pytest.mark.parametrize("kind", list(MessageKind))
def test_each_kind_has_its_mime_structure(kind: MessageKind) -> None:
    message = parse(make_message(random.Random(5), kind=kind))
    if kind is MessageKind.PLAIN:
        assert message.get_content_type() == "text/plain"
    elif kind is MessageKind.ALTERNATIVE:
        assert message.get_content_type() == "multipart/alternative"
        types = [part.get_content_type() for part in message.iter_parts()]
        assert types == ["text/plain", "text/html"]
    else:
        assert message.get_content_type() == "multipart/mixed"
        attachments = list(message.iter_attachments())
        assert attachments
        for attachment in attachments:
            assert attachment.get_filename()
            assert attachment.get_content()


def test_mailbox_mixes_kinds_attachments_charsets_and_replies() -> None:
    messages = [parse(raw) for raw in make_mailbox(11, 100)]
    types = {m.get_content_type() for m in messages}
    assert types == {"text/plain", "multipart/alternative", "multipart/mixed"}
    charsets = {part.get_content_charset() for m in messages for part in m.walk()}
    assert {"utf-8", "iso-8859-1"} <= charsets
    names = {a.get_filename() for m in messages for a in m.iter_attachments()}
    assert "photo.png" in names
    assert names & {"Übersicht.pdf", "契約書.pdf"}
    assert any(not str(m["Subject"]).isascii() for m in messages)
    replies = [m for m in messages if m["In-Reply-To"]]
    assert len(replies) > 15


def test_a_reply_threads_onto_its_parent() -> None:
    rng = random.Random(2)
    parent_raw = make_message(rng, subject="Budget 2025")
    reply_raw = make_message(rng, thread_of=parent_raw)
    parent, reply = parse(parent_raw), parse(reply_raw)
    second = parse(make_message(rng, thread_of=reply_raw))
    assert str(reply["Subject"]) == "Re: Budget 2025"
    assert reply["In-Reply-To"] == parent["Message-ID"]
    assert reply["References"].split() == [parent["Message-ID"]]
    assert str(second["Subject"]) == "Re: Budget 2025"  # no "Re: Re:"
    assert second["References"].split() == [parent["Message-ID"], reply["Message-ID"]]
    assert reply["To"].addresses[0].addr_spec == parent["From"].addresses[0].addr_spec
    assert reply["Date"].datetime > parent["Date"].datetime


def test_mailbox_dates_move_forward() -> None:
    dates = [parse(raw)["Date"].datetime for raw in make_mailbox(4, 60)]
    assert dates == sorted(dates)


def test_bad_header_encoding_keeps_undecodable_words() -> None:
    raw = make_broken_message(random.Random(1), Defect.BAD_HEADER_ENCODING)
    head = raw.split(b"\r\n\r\n")[0]
    assert not head.isascii()  # raw 8-bit bytes in a header
    assert b"=?x-unknown-charset?" in head
    message = parse(raw)
    assert message["Subject"] is not None


def test_truncated_multipart_lacks_its_closing_boundary() -> None:
    raw = make_broken_message(random.Random(1), Defect.TRUNCATED_MULTIPART)
    assert b"--cut-here--" not in raw
    message = parse(raw)
    assert any(type(d).__name__ == "CloseBoundaryNotFoundDefect" for d in message.defects)


def test_wrong_charset_body_is_not_utf8() -> None:
    raw = make_broken_message(random.Random(1), Defect.WRONG_CHARSET)
    message = parse(raw)
    assert message.get_content_charset() == "utf-8"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
