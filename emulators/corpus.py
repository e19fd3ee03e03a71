"""Deterministic RFC 822 test mail: realistic messages and deliberately broken ones.

Everything here is driven by a seeded ``random.Random``, so ``make_mailbox(seed, count)`` returns
the same bytes on every machine and every run (MIME boundaries included: the stdlib would otherwise
draw them from the global random state). Messages are built with the stdlib ``email`` package:

- plain text (UTF-8 or ISO-8859-1), multipart/alternative (text + HTML), multipart/mixed with
  attachments (PDF-like and PNG-like binaries, text and CSV files);
- non-ASCII display names, subjects and attachment names (RFC 2047 / RFC 2231 encoded on the wire);
- threads: replies carry ``In-Reply-To``, ``References`` and a "Re:" subject.

``make_broken_message`` writes bytes by hand, because the ``email`` package repairs what it builds:
undecodable encoded words, raw 8-bit header bytes, a multipart body cut off before its closing
boundary, a part whose declared charset does not match its bytes. Parsers must survive these.

This module never touches the network or the file system.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from email import encoders, policy
from email.charset import BASE64, QP, Charset
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, getaddresses, parsedate_to_datetime
from enum import StrEnum
from html import escape

# The classic (compat32) API: about ten times faster than EmailMessage, which matters for
# mailboxes of thousands of messages. On the wire mail uses CRLF, as Gmail's raw format does.
_WIRE = policy.compat32.clone(linesep="\r\n")
_PARSER = BytesParser(policy=policy.compat32)

Person = tuple[str, str]

PEOPLE: tuple[Person, ...] = (
    ("Alice Johnson", "alice@example.com"),
    ("Bob Smith", "bob.smith@example.org"),
    ("Zoë Müller", "zoe.mueller@example.de"),
    ("田中 太郎", "taro.tanaka@example.jp"),
    ("Ana María Núñez", "ana.nunez@example.es"),
    ("Björn Ångström", "bjorn@example.se"),
    ("Иван Петров", "ivan.petrov@example.ru"),
    ("O'Brien, Seán", "sean.obrien@example.ie"),
    ("Priya Patel", "priya@example.in"),
    ("Chloé Lefèvre", "chloe.lefevre@example.fr"),
    ("Support 🚀 Team", "support@example.net"),
)

SUBJECTS: tuple[str, ...] = (
    "Quarterly report",
    "日本語の件名",
    "Café meeting at 10 ☕",
    "🎉 Launch day!",
    "Réunion budgétaire",
    "Invoice #4821",
    "Über die Änderungen im Vertrag",
    "Привет из Москвы",
    "Lunch?",
    "Re-planning the roadmap: a rather long subject line that has to be folded by the generator",
)

_WORDS: tuple[str, ...] = (
    "the", "report", "meeting", "budget", "café", "schedule", "draft", "review", "naïve",
    "deadline", "team", "über", "project", "numbers", "señor", "attached", "please", "thanks",
    "tomorrow", "コーヒー", "update", "quarter", "résumé", "plan", "ok", "ünd", "client",
)  # fmt: skip

_ZONES = (0, 1, 2, -5, -8, 9, 5.5)


class MessageKind(StrEnum):
    """The MIME shapes ``make_message`` can produce."""

    PLAIN = "plain"
    ALTERNATIVE = "alternative"
    MIXED = "mixed"


class Defect(StrEnum):
    """The ways ``make_broken_message`` can break a message."""

    BAD_HEADER_ENCODING = "bad_header_encoding"
    TRUNCATED_MULTIPART = "truncated_multipart"
    WRONG_CHARSET = "wrong_charset"


def make_mailbox(seed: int, count: int, *, reply_ratio: float = 0.3) -> list[bytes]:
    """Return ``count`` messages in chronological order; about ``reply_ratio`` of them replies."""
    rng = random.Random(seed)
    when = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    messages: list[bytes] = []
    for _ in range(count):
        when += timedelta(minutes=rng.randint(3, 600))
        # Replies go to recent messages, which is how real threads cluster in time.
        parent = rng.choice(messages[-20:]) if messages and rng.random() < reply_ratio else None
        messages.append(make_message(rng, thread_of=parent, date=when))
    return messages


def make_message(
    rng: random.Random,
    *,
    thread_of: bytes | None = None,
    kind: MessageKind | None = None,
    sender: Person | None = None,
    recipients: list[Person] | None = None,
    subject: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """Build one message; with ``thread_of`` it is a reply to that message."""
    kind = kind or rng.choices(list(MessageKind), weights=(35, 40, 25))[0]
    parent = _PARSER.parsebytes(thread_of) if thread_of else None
    headers: list[tuple[str, str | Header]] = []
    if parent is not None:
        sender = sender or _first_person(parent, "To") or rng.choice(PEOPLE)
        recipients = recipients or [_first_person(parent, "From") or rng.choice(PEOPLE)]
        subject = subject or _reply_subject(_decoded(parent.get("Subject", "")))
        date = date or _parent_date(parent) + timedelta(minutes=rng.randint(1, 3000))
    sender = sender or rng.choice(PEOPLE)
    recipients = recipients or rng.sample([p for p in PEOPLE if p != sender], rng.randint(1, 3))
    headers.append(("From", _address(sender)))
    headers.append(("To", ", ".join(_address(person) for person in recipients)))
    if rng.random() < 0.2:
        headers.append(("Cc", _address(rng.choice(PEOPLE))))
    subject = subject or rng.choice(SUBJECTS)
    headers.append(("Subject", subject if subject.isascii() else Header(subject, "utf-8")))
    headers.append(("Date", format_datetime(_local(date or _random_date(rng), rng))))
    message_id = f"<{rng.getrandbits(64):016x}.{rng.getrandbits(24):06x}@{_domain(sender)}>"
    headers.append(("Message-ID", message_id))
    if parent is not None:
        parent_id = str(parent.get("Message-ID", "")).strip()
        references = str(parent.get("References", "")).split()
        headers.append(("In-Reply-To", parent_id))
        headers.append(("References", " ".join([*references, parent_id])))
    text = _body_text(rng, parent)
    if kind is MessageKind.PLAIN:
        # Some real mail still comes in Latin-1; keep the charset honest by encoding what fits.
        latin1 = rng.random() < 0.3 and _fits_latin1(text)
        body: Message = _text_part(text, "plain", rng, "iso-8859-1" if latin1 else "utf-8")
    else:
        body = MIMEMultipart("alternative", boundary=_boundary(rng))
        body.attach(_text_part(text, "plain", rng))
        body.attach(_text_part(_html(text), "html", rng))
    if kind is MessageKind.MIXED:
        mixed = MIMEMultipart("mixed", boundary=_boundary(rng))
        mixed.attach(body)
        for _ in range(rng.randint(1, 3)):
            mixed.attach(_attachment(rng))
        body = mixed
    # Envelope headers first, as mailers write them; the MIME classes put theirs first.
    content_headers: list[tuple[str, str | Header]] = list(body.items())
    for name, _ in content_headers:
        del body[name]
    for name, value in [*headers, *content_headers]:
        # The stdlib takes Header objects here (it folds them); its type stubs say str only.
        body[name] = value  # type: ignore[assignment]
    return body.as_bytes(policy=_WIRE)


def make_broken_message(rng: random.Random, defect: Defect | None = None) -> bytes:
    """Build a message with ``defect`` (or a random one), written as raw bytes."""
    defect = defect or rng.choice(list(Defect))
    message_id = f"<broken.{rng.getrandbits(48):012x}@example.com>"
    date = format_datetime(_random_date(rng))
    if defect is Defect.BAD_HEADER_ENCODING:
        head = (
            b"From: =?utf-8?B?not*base64*at*all?= <mallory@example.com>\r\n"
            b"To: J\xf6rg Unencoded <joerg@example.de>\r\n"
            b"Subject: =?x-unknown-charset?Q?caf=E9?= and =?utf-8?Q?broken=ZZ?=\r\n"
        )
        body = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHeaders above are broken.\r\n"
    elif defect is Defect.TRUNCATED_MULTIPART:
        head = b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: cut off\r\n"
        body = (
            b'Content-Type: multipart/mixed; boundary="cut-here"\r\n\r\n'
            b"--cut-here\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
            b"--cut-here\r\nContent-Type: application/pdf; name=x.pdf\r\n"
            b"Content-Disposition: attachment; filename=x.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJeLjz9MKMSAwIG9iag"
        )
    else:
        head = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: charset lie\r\n"
        body = (
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            b"Caf\xe9 cr\xe8me br\xfbl\xe9e, encoded as Latin-1 despite the header.\r\n"
        )
    return (
        head + f"Date: {date}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n".encode() + body
    )


def _address(person: Person) -> str:
    return formataddr(person, charset="utf-8")


def _domain(person: Person) -> str:
    return person[1].rpartition("@")[2]


def _decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def _first_person(msg: Message, header: str) -> Person | None:
    addresses = getaddresses([str(msg.get(header, ""))])
    if not addresses or not addresses[0][1]:
        return None
    name, address = addresses[0]
    return (_decoded(name), address)


def _reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _parent_date(parent: Message) -> datetime:
    try:
        return parsedate_to_datetime(str(parent.get("Date", "")))
    except (TypeError, ValueError):
        return datetime(2024, 3, 1, tzinfo=UTC)


def _random_date(rng: random.Random) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 365 * 86400))


def _local(moment: datetime, rng: random.Random) -> datetime:
    # Senders live in different time zones; the Date header shows their local offset.
    return moment.astimezone(timezone(timedelta(hours=rng.choice(_ZONES))))


def _boundary(rng: random.Random) -> str:
    # Drawn from our generator: the stdlib would use the global one and break determinism.
    return f"=_{rng.getrandbits(64):016x}"


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(5, 14))
    return " ".join(words).capitalize() + rng.choice(".!?")


def _body_text(rng: random.Random, parent: Message | None) -> str:
    paragraphs = [
        " ".join(_sentence(rng) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))
    ]
    text = "\n\n".join(paragraphs) + "\n"
    if parent is not None:
        author = _decoded(str(parent.get("From", "someone")))
        text += f"\nOn {parent.get('Date', 'an earlier day')}, {author} wrote:\n> earlier text\n"
    return text


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n"))
    return f"<!DOCTYPE html><html><body>{paragraphs}</body></html>\n"


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("iso-8859-1")
    except UnicodeEncodeError:
        return False
    return True


def _text_part(text: str, subtype: str, rng: random.Random, charset: str = "utf-8") -> MIMEText:
    if text.isascii():
        return MIMEText(text, subtype, "us-ascii")
    encoding = Charset(charset)
    # Mailers differ: some send UTF-8 as quoted-printable, others as base64.
    encoding.body_encoding = QP if charset != "utf-8" or rng.random() < 0.5 else BASE64
    return MIMEText(text, subtype, encoding)  # type: ignore[arg-type]


def _attachment(rng: random.Random) -> Message:
    choice = rng.randrange(4)
    part: Message
    if choice == 0:
        pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(rng.randint(200, 2000)) + b"%%EOF\n"
        part = MIMEApplication(pdf, "pdf")
        name = rng.choice(("report-2024-Q3.pdf", "Übersicht.pdf", "契約書.pdf"))
    elif choice == 1:
        part = MIMEBase("image", "png")
        part.set_payload(b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(100, 1500)))
        encoders.encode_base64(part)
        name = "photo.png"
    elif choice == 2:
        notes = "\n".join(_sentence(rng) for _ in range(rng.randint(2, 6))) + "\n"
        part = _text_part(notes, "plain", rng)
        name = "notes.txt"
    else:
        rows = [f"{i},{rng.randint(0, 9999)},{rng.choice(_WORDS)}" for i in range(5)]
        part = _text_part("id,amount,label\n" + "\n".join(rows) + "\n", "csv", rng)
        name = "data.csv"
    # Non-ASCII names go out RFC 2231 encoded (filename*=utf-8''...), as modern mailers do.
    filename: str | tuple[str, str, str] = name if name.isascii() else ("utf-8", "", name)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part
