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
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from enum import StrEnum
from html import escape

# On the wire mail uses CRLF; Gmail's raw format returns it that way too.
_WIRE = policy.default.clone(linesep="\r\n")

PEOPLE: tuple[tuple[str, str], ...] = (
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
    sender: tuple[str, str] | None = None,
    recipients: list[tuple[str, str]] | None = None,
    subject: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """Build one message; with ``thread_of`` it is a reply to that message."""
    kind = kind or rng.choices(list(MessageKind), weights=(35, 40, 25))[0]
    msg = EmailMessage(policy=_WIRE)
    parent = BytesParser(policy=policy.default).parsebytes(thread_of) if thread_of else None
    if parent is not None:
        sender = sender or _first_address(parent, "To") or rng.choice(PEOPLE)
        recipients = recipients or [_first_address(parent, "From") or rng.choice(PEOPLE)]
        subject = subject or _reply_subject(str(parent.get("Subject", "")))
        date = date or _parent_date(parent) + timedelta(minutes=rng.randint(1, 3000))
    sender = sender or rng.choice(PEOPLE)
    recipients = recipients or rng.sample([p for p in PEOPLE if p != sender], rng.randint(1, 3))
    msg["From"] = _address(sender)
    msg["To"] = tuple(_address(person) for person in recipients)
    if rng.random() < 0.2:
        msg["Cc"] = _address(rng.choice(PEOPLE))
    msg["Subject"] = subject or rng.choice(SUBJECTS)
    msg["Date"] = format_datetime(_local(date or _random_date(rng), rng))
    msg["Message-ID"] = f"<{rng.getrandbits(64):016x}.{rng.getrandbits(24):06x}@{_domain(sender)}>"
    if parent is not None:
        parent_id = str(parent.get("Message-ID", "")).strip()
        references = str(parent.get("References", "")).split()
        msg["In-Reply-To"] = parent_id
        msg["References"] = " ".join([*references, parent_id])
    text = _body_text(rng, parent)
    if kind is MessageKind.PLAIN:
        # Some real mail still comes in Latin-1; keep the charset honest by encoding what fits.
        latin1 = rng.random() < 0.3 and _fits_latin1(text)
        msg.set_content(text, charset="iso-8859-1" if latin1 else "utf-8")
    else:
        msg.set_content(text)
        msg.add_alternative(_html(text), subtype="html")
    if kind is MessageKind.MIXED:
        for _ in range(rng.randint(1, 3)):
            _attach(msg, rng)
    _fix_boundaries(msg, rng)
    return msg.as_bytes()


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


def _address(person: tuple[str, str]) -> Address:
    return Address(display_name=person[0], addr_spec=person[1])


def _domain(person: tuple[str, str]) -> str:
    return person[1].rpartition("@")[2]


def _first_address(msg: EmailMessage, header: str) -> tuple[str, str] | None:
    value = msg.get(header)
    addresses = getattr(value, "addresses", ())
    if not addresses:
        return None
    first: Address = addresses[0]
    return (first.display_name, first.addr_spec)


def _reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _parent_date(parent: EmailMessage) -> datetime:
    value = parent.get("Date")
    parsed = getattr(value, "datetime", None)
    return parsed if isinstance(parsed, datetime) else datetime(2024, 3, 1, tzinfo=UTC)


def _random_date(rng: random.Random) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 365 * 86400))


def _local(moment: datetime, rng: random.Random) -> datetime:
    # Senders live in different time zones; the Date header shows their local offset.
    return moment.astimezone(timezone(timedelta(hours=rng.choice(_ZONES))))


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(5, 14))
    return " ".join(words).capitalize() + rng.choice(".!?")


def _body_text(rng: random.Random, parent: EmailMessage | None) -> str:
    paragraphs = [
        " ".join(_sentence(rng) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))
    ]
    text = "\n\n".join(paragraphs) + "\n"
    if parent is not None:
        author = str(parent.get("From", "someone"))
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


def _attach(msg: EmailMessage, rng: random.Random) -> None:
    choice = rng.randrange(4)
    if choice == 0:
        pdf = (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(rng.randint(200, 2000)) + b"\n%%EOF\n"
        )
        name = rng.choice(("report-2024-Q3.pdf", "Übersicht.pdf", "契約書.pdf"))
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    elif choice == 1:
        png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(100, 1500))
        msg.add_attachment(png, maintype="image", subtype="png", filename="photo.png")
    elif choice == 2:
        notes = "\n".join(_sentence(rng) for _ in range(rng.randint(2, 6))) + "\n"
        msg.add_attachment(notes, subtype="plain", filename="notes.txt")
    else:
        rows = [f"{i},{rng.randint(0, 9999)},{rng.choice(_WORDS)}" for i in range(5)]
        csv = "id,amount,label\n" + "\n".join(rows) + "\n"
        msg.add_attachment(csv, subtype="csv", filename="data.csv")


def _fix_boundaries(msg: EmailMessage, rng: random.Random) -> None:
    for part in msg.walk():
        if part.is_multipart():
            part.set_boundary(f"=_{rng.getrandbits(64):016x}")
