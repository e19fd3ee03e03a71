"""emulators.gmail_mime: Gmail's view of a message, from good and from broken mail."""

from __future__ import annotations

import random

import pytest

from emulators.corpus import Defect, MessageKind, make_broken_message, make_message
from emulators.gmail_mime import parse_message


def test_mixed_message_tree_is_numbered_like_gmail() -> None:
    rng = random.Random(3)
    parsed = parse_message(make_message(rng, kind=MessageKind.MIXED))
    root = parsed.payload
    assert root.part_id == ""
    assert root.mime_type == "multipart/mixed"
    assert [p.part_id for p in root.parts][:1] == ["0"]
    alternative = root.parts[0]
    assert alternative.mime_type == "multipart/alternative"
    assert [(p.part_id, p.mime_type) for p in alternative.parts] == [
        ("0.0", "text/plain"),
        ("0.1", "text/html"),
    ]
    attachments = root.parts[1:]
    assert attachments
    assert all(p.filename and p.body for p in attachments)
    assert root.find("0.1") is alternative.parts[1]


def test_headers_are_decoded_and_unfolded() -> None:
    rng = random.Random(1)
    subject = "Über die Änderungen im Vertrag, ein sehr langer Betreff, der gefaltet werden muss"
    raw = make_message(rng, sender=("Zoë Müller", "zoe@example.de"), subject=subject)
    parsed = parse_message(raw)
    assert parsed.subject == subject
    assert parsed.header("from") == "Zoë Müller <zoe@example.de>"
    assert all("\n" not in value for _, value in parsed.payload.headers)


def test_bodies_are_transfer_decoded_in_their_own_charset() -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.payload.body == "Café crème\r\n".encode("iso-8859-1")
    assert parsed.snippet == "Café crème"


def test_snippet_is_html_escaped_and_falls_back_to_html_text() -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>It&#39;s  <b>done</b> &amp; dusted</p></body></html>\r\n"
    )
    assert parse_message(raw).snippet == "It&#39;s done &amp; dusted"


def test_thread_keys_put_in_reply_to_first() -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Re: x\r\n"
        b"Message-ID: <3@x>\r\nIn-Reply-To: <2@x>\r\nReferences: <1@x> <2@x>\r\n\r\nhi\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "<3@x>"
    assert parsed.references == ("<2@x>", "<1@x>")
    assert parsed.recipients == ("b@example.com",)


@pytest.mark.parametrize("defect", list(Defect))
def test_broken_mail_parses_without_raising_and_stays_json_safe(defect: Defect) -> None:
    parsed = parse_message(make_broken_message(random.Random(9), defect))
    for part in parsed.payload.walk():
        for name, value in part.headers:
            (name + value).encode("utf-8")  # no lone surrogates
    parsed.snippet.encode("utf-8")
    if defect is Defect.TRUNCATED_MULTIPART:
        assert [p.mime_type for p in parsed.payload.parts] == ["text/plain", "application/pdf"]
    if defect is Defect.BAD_HEADER_ENCODING:
        assert "\ufffd" in (parsed.header("To") or "")
