"""sync.providers.mime: corpus mail against the stdlib's modern parser, broken and hostile mail."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.corpus import Defect, make_broken_message, make_mailbox
from sync.providers.mime import (
    MAX_DEPTH,
    SNIPPET_LENGTH,
    extract_attachment,
    make_snippet,
    parse_envelope,
    parse_message,
)
from sync.providers.records import Address

FALLBACK = datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)


def oracle(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def text(part: MIMEPart | None) -> str | None:
    return None if part is None else str(part.get_content()).replace("\r\n", "\n")


def message(head: str, body: bytes = b"body\r\n") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


# -- corpus ---------------------------------------------------------------------------------


def test_corpus_mail_reads_as_the_stdlib_modern_parser_reads_it() -> None:
    for raw in make_mailbox(4, 80):
        parsed = parse_message(raw)
        expected = oracle(raw)
        envelope = parsed.envelope
        assert parsed.parse_error is None
        assert envelope.subject == str(expected["Subject"])
        assert envelope.date == expected["Date"].datetime
        assert envelope.message_id == str(expected["Message-ID"])
        for header, addresses in [
            ("From", envelope.from_addresses),
            ("To", envelope.to_addresses),
            ("Cc", envelope.cc_addresses),
        ]:
            value = expected[header]
            wanted = (
                [] if value is None else [(a.display_name, a.addr_spec) for a in value.addresses]
            )
            assert [(a.name, a.email) for a in addresses] == wanted
        if expected["In-Reply-To"] is not None:
            assert envelope.in_reply_to == str(expected["In-Reply-To"])
            assert envelope.references == tuple(str(expected["References"]).split())
        assert parsed.text_body == text(expected.get_body(preferencelist=("plain",)))
        html = expected.get_body(preferencelist=("html",))
        assert parsed.html_body == (text(html) if html is not None else None)
        assert 0 < len(parsed.snippet) <= SNIPPET_LENGTH
        attachments = [p for p in expected.walk() if p.get_content_disposition() == "attachment"]
        assert [(a.filename, a.content_type) for a in parsed.attachments] == [
            (p.get_filename(), p.get_content_type()) for p in attachments
        ]
        for record, part in zip(parsed.attachments, attachments, strict=True):
            assert record.part_id is not None
            data = extract_attachment(raw, record.part_id)
            assert data == part.get_payload(decode=True)
            assert record.size == len(data)
            assert not record.inline


def test_part_ids_follow_gmail_numbering() -> None:
    raw = message(
        'Subject: parts\nContent-Type: multipart/mixed; boundary="m"\n',
        b"--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
        b"--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--a\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--a--\r\n"
        b"--m\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="a.bin"\r\n\r\nAAA\r\n'
        b"--m\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n--m--\r\n",
    )
    parsed = parse_message(raw)
    assert (parsed.text_body, parsed.html_body) == ("plain", "<p>html</p>")
    assert [(a.part_id, a.filename, a.inline, a.content_id) for a in parsed.attachments] == [
        ("1", "a.bin", False, None),
        ("2", "", True, "logo@x"),
    ]
    assert extract_attachment(raw, "1") == b"AAA"
    assert extract_attachment(raw, "2") == b"\x89PNG"
    with pytest.raises(KeyError):
        extract_attachment(raw, "0")  # a container, not a leaf
    with pytest.raises(KeyError):
        extract_attachment(raw, "7")


def test_an_attached_message_is_one_attachment_not_more_body() -> None:
    inner = b"From: x@y.z\r\nSubject: inner\r\n\r\ninner body\r\n"
    raw = message(
        'Subject: outer\nContent-Type: multipart/mixed; boundary="m"\n',
        b"--m\r\nContent-Type: text/plain\r\n\r\nouter body\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--m--\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.text_body == "outer body"
    [attachment] = parsed.attachments
    assert attachment.content_type == "message/rfc822"
    assert b"inner body" in extract_attachment(raw, attachment.part_id or "")


# -- broken mail ----------------------------------------------------------------------------


def test_undecodable_header_words_and_raw_8bit_headers() -> None:
    parsed = parse_message(make_broken_message(random.Random(1), Defect.BAD_HEADER_ENCODING))
    assert parsed.parse_error is not None
    assert parsed.envelope.to_addresses == (Address("Jörg Unencoded", "joerg@example.de"),)
    assert parsed.envelope.from_addresses[0].email == "mallory@example.com"
    assert parsed.envelope.subject.startswith("caf")
    assert parsed.text_body == "Headers above are broken.\n"


def test_a_multipart_cut_off_keeps_what_arrived() -> None:
    parsed = parse_message(make_broken_message(random.Random(1), Defect.TRUNCATED_MULTIPART))
    assert parsed.parse_error is not None
    assert "CloseBoundaryNotFoundDefect" in parsed.parse_error
    assert parsed.text_body == "first part"
    [pdf] = parsed.attachments
    assert (pdf.filename, pdf.content_type) == ("x.pdf", "application/pdf")
    assert extract_attachment(
        make_broken_message(random.Random(1), Defect.TRUNCATED_MULTIPART), pdf.part_id or ""
    ).startswith(b"%PDF-1.4")


def test_text_that_lies_about_its_charset_falls_back() -> None:
    parsed = parse_message(make_broken_message(random.Random(1), Defect.WRONG_CHARSET))
    assert parsed.text_body is not None
    assert parsed.text_body.startswith("Café crème brûlée")
    assert parsed.parse_error == "text not in its declared charset"


def test_parse_errors_name_the_problem_not_the_content() -> None:
    for defect in Defect:
        parsed = parse_message(make_broken_message(random.Random(2), defect))
        assert parsed.parse_error is not None
        assert len(parsed.parse_error) <= 200
        for word in ("Jörg", "mallory", "Café", "first part", "cut off"):
            assert word not in parsed.parse_error


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        ("Content-Type: text/plain; charset=x-no-such-charset\n", b"caf\xc3\xa9", "café"),
        ("Content-Type: text/plain; charset=iso-8859-1\n", b"caf\xe9", "café"),
        ("Content-Type: text/plain; charset=windows-1252\n", b"\x93quoted\x94", "“quoted”"),
        ("Content-Type: text/plain\n", b"na\xefve", "naïve"),  # 8-bit without a charset
        ("Content-Type: text/plain; charset=utf-8\n", b"nul\x00byte", "nul\ufffdbyte"),
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
            b"Y2Fmw6k=",
            "café",
        ),
        (
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n",
            b"caf=C3=A9 =\r\nsoft",
            "café soft",
        ),
        ("Content-Type: text/plain; charset=iso-2022-jp\n", b"\x1b$BF|K\\\x1b(B", "日本"),
    ],
)
def test_charsets(head: str, body: bytes, expected: str) -> None:
    assert parse_message(message(f"Subject: t\n{head}", body)).text_body == expected


def test_non_ascii_headers_and_names() -> None:
    raw = message(
        "From: =?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe@example.de>\n"
        'To: =?iso-8859-1?q?J=F6rg?= <j@example.de>, "O\'Brien, Seán" <s@example.ie>\n'
        "Cc: Doe, John <john@example.com>\n"
        "Bcc: undisclosed-recipients:;\n"
        "Subject: =?utf-8?b?5pel5pys6Kqe44Gu5Lu25ZCN?= and\n =?utf-8?q?caf=C3=A9?=\n"
        'Content-Type: multipart/mixed; boundary="m"\n',
        b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
        b"--m\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; "
        b"filename*=utf-8''%E5%A5%91%E7%B4%84%E6%9B%B8.pdf\r\n\r\nx\r\n"
        b"--m\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?q?=C3=9Cbersicht.pdf?="\r\n\r\ny\r\n'
        b"--m--\r\n",
    )
    parsed = parse_message(raw)
    envelope = parsed.envelope
    assert envelope.from_addresses == (Address("Zoë Müller", "zoe@example.de"),)
    assert envelope.to_addresses == (
        Address("Jörg", "j@example.de"),
        Address("O'Brien, Seán", "s@example.ie"),
    )
    assert envelope.cc_addresses == (Address("Doe, John", "john@example.com"),)
    assert envelope.bcc_addresses == ()
    assert envelope.subject == "日本語の件名 and café"
    assert [a.filename for a in parsed.attachments] == ["契約書.pdf", "Übersicht.pdf"]
    assert ("From", "Zoë Müller <zoe@example.de>") in parsed.headers
    # UTF-8 straight in the header (RFC 6532), as modern mailers may send it.
    raw_utf8 = "Subject: Grüße\r\nFrom: Zoë <zoe@example.de>\r\n\r\nx".encode()
    utf8 = parse_message(raw_utf8)
    assert utf8.envelope.subject == "Grüße"
    assert utf8.envelope.from_addresses == (Address("Zoë", "zoe@example.de"),)


def test_dates() -> None:
    def date_of(value: str | None) -> datetime | None:
        head = "Subject: d\n" + (f"Date: {value}\n" if value is not None else "")
        return parse_message(message(head), fallback_date=FALLBACK).envelope.date

    assert date_of("Tue, 04 Feb 2025 10:00:00 +0530") == datetime(
        2025, 2, 4, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert date_of("Tue, 04 Feb 2025 10:00:00") == datetime(2025, 2, 4, 10, tzinfo=UTC)
    assert date_of(None) == FALLBACK
    assert date_of("yesterday, around noon") == FALLBACK
    assert date_of("Tue, 04 Feb 99999 10:00:00 +0000") == FALLBACK
    assert parse_message(message("Subject: d\n")).envelope.date is None
    assert parse_message(message("Date: soon\n")).parse_error == "unreadable Date"


def test_html_only_mail_gets_a_snippet_without_markup() -> None:
    html = b"<html><head><style>p{color:red}</style></head><body><p>Hello&nbsp;<b>you</b></p>"
    parsed = parse_message(message("Content-Type: text/html\n", html))
    assert parsed.text_body is None
    assert parsed.snippet == "Hello you"  # the no-break space is whitespace too
    assert make_snippet("a  b\n\n c" * 100, None) == ("a b c" * 100)[:SNIPPET_LENGTH]
    assert make_snippet(None, None) == ""


def test_envelope_from_header_pairs_matches_the_raw_parse() -> None:
    raw = make_mailbox(6, 1)[0]
    parsed = parse_message(raw)
    envelope, problem = parse_envelope(parsed.headers, fallback_date=FALLBACK)
    assert problem is None
    assert envelope == parsed.envelope


# -- hostile input --------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    opening = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
        for i in range(depth)
    )
    closing = b"".join(f"--b{i}--\r\n".encode() for i in reversed(range(depth)))
    return b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nbottom\r\n" + closing


def test_deep_nesting_is_cut_off() -> None:
    assert parse_message(nested(10)).text_body == "bottom"
    deep = parse_message(nested(MAX_DEPTH + 5))
    assert deep.parse_error == "MIME nesting too deep"
    assert deep.envelope.subject == "deep"
    # So deep the stdlib parser itself gives up: the headers are still read.
    deeper = parse_message(nested(1000))
    assert deeper.parse_error is not None
    assert deeper.envelope.subject == "deep"
    with pytest.raises(KeyError):
        extract_attachment(nested(1000), "0")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"no header at all, just text",
        b"Subject: only headers",
        b"Subject: \xff\xfe\x00\r\n\r\n\x00\x00",
        b'From: <>\r\nTo: ,,,@,<@>\r\nReply-To: "unterminated\r\n\r\n',
        b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\nno parts at all\r\n',
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***",
        b"Content-Type: application/pdf; name*=bogus''%ZZ%\r\n\r\ndata",
        b'Content-Type: text/plain; charset="\r\n\r\nx',
        b"Subject: " + b"x" * 100_000 + b"\r\n\r\nlong header",
        b"Subject: =?utf-8?b?" + b"A" * 5000 + b"?=\r\n\r\nx",
        # Inputs on which the stdlib's decoders or naive regular expressions take minutes:
        b"Content-Type: text/html\r\n\r\n" + b"<" * 200_000,
        b"Content-Type: text/html\r\n\r\n" + b"<style>x</style>" * 50_000,
        b"Subject: " + b"=?utf-8?q?a?= " * 20_000 + b"\r\n\r\nx",
        b"From: " + b'"' * 100_000 + b"\r\n\r\nx",
        b"To: " + b"(" * 5_000 + b"\r\n\r\nx",
        b"To: "
        + b", ".join(b"N %d <a%d@example.com>" % (i, i) for i in range(3_000))
        + b"\r\n\r\n",
    ],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw, fallback_date=FALLBACK)
    assert parsed.envelope.date == FALLBACK
    for value in (parsed.text_body or "", parsed.envelope.subject, *dict(parsed.headers).values()):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates


def test_every_truncation_of_a_real_message_parses() -> None:
    raw = next(r for r in make_mailbox(7, 40) if b"multipart/mixed" in r)
    for end in range(0, len(raw), 37):
        parse_message(raw[:end])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    parse_message(raw)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(
    [b"Subject: =?utf-8?q?x?=", b"Content-Type: multipart/mixed; boundary=b", b"--b", b"--b--",
     b"Content-Transfer-Encoding: base64", b"From: a, b <c@d>", b"", b"\xe9\xff", b"=?x?=",
     b"Content-Disposition: attachment; filename*=x''%", b"Content-Type: message/rfc822"]
), max_size=40))  # fmt: skip
def test_random_mime_shaped_lines_never_raise(lines: list[bytes]) -> None:
    raw = b"\r\n".join(lines)
    parsed = parse_message(raw)
    for attachment in parsed.attachments:
        assert attachment.part_id is not None
        extract_attachment(raw, attachment.part_id)
