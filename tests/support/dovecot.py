"""A real Dovecot IMAP/LMTP server for tests, started from a config in a temporary folder.

``start_dovecot()`` writes a config (nothing under /etc changes), a self-signed TLS certificate
(a throwaway CA from ``emulators.test_ca``), a passwd-file of ``{PLAIN}`` users, and runs
``dovecot -F -c FILE`` as root with free loopback ports for IMAPS (implicit TLS), IMAP (with
STARTTLS, plaintext login allowed so tests can exercise the loopback-plaintext setting) and
LMTP. Mail is Maildir under ``<root>/home/<user>``, owned by ``nobody``; every user gets the
special-use folders Drafts, Sent, Trash, Junk and Archive. CONDSTORE, QRESYNC, IDLE, MOVE and
UIDPLUS are on (Dovecot's defaults).

Helpers stand in for the world outside Inbox API: ``add_user``, ``deliver`` (LMTP, as an MTA
would), ``save`` (``doveadm save``), and ``client()``, an ``imaplib`` client that acts as
"another mail client" (APPEND, STORE, MOVE, EXPUNGE, delete and recreate a folder). The other
client is the stdlib's on purpose: it shares no code with the adapter under test.

``scripts/install-dovecot`` installs the packages. Never point this at a real mail store.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.runner import free_port
from emulators.test_ca import TlsFiles, create_test_ca

__all__ = [
    "SPECIAL_FOLDERS",
    "Dovecot",
    "DovecotMissingError",
    "OtherClient",
    "dovecot_installed",
    "start_dovecot",
]

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
HOST = "127.0.0.1"
MAIL_OWNER = "nobody"
MAIL_GROUP = "nogroup"
SPECIAL_FOLDERS: dict[str, str] = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}

_CONFIG = """\
# Written by tests/support/dovecot.py for one test run.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = inbox-api-test-{imaps_port}
listen = {host}
protocols = imap lmtp
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
mail_max_userip_connections = 200
mail_fsync = never
postmaster_address = postmaster@example.test

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={owner} gid={group} home={root}/home/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
{special}
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
# No auth penalty: a test that logs in with a wrong password must not slow the logins of the
# tests after it (Dovecot otherwise delays every login from that IP for up to 15 s).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp_port}
  }}
}}
"""


class DovecotMissingError(RuntimeError):
    """Dovecot is not installed; ``scripts/install-dovecot`` installs it."""


def dovecot_installed() -> bool:
    return Path(DOVECOT).exists() and Path(DOVEADM).exists()


@dataclass
class Dovecot:
    """A running Dovecot; ``stop()`` ends it and removes its folder."""

    root: Path
    tls: TlsFiles
    imaps_port: int
    imap_port: int
    lmtp_port: int
    process: subprocess.Popen[bytes]
    host: str = HOST
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's throwaway CA and nothing else."""
        return self.tls.client_context()

    def add_user(self, user: str, password: str) -> None:
        """Add a mailbox user, or change its password: a passwd-file of its own per user."""
        if "/" in user or ":" in user or ":" in password or "\n" in user + password:
            raise ValueError("passwd-file fields cannot hold ':', '/' or newlines")
        if user in self.passwords:
            # Dovecot looks at a passwd-file again at most once a second: a change within the
            # second of the last login would go unnoticed.
            time.sleep(1.05)
        self.passwords[user] = password
        (self.root / "users" / user).write_text(f"{user}:{{PLAIN}}{password}::::::\n")

    def save(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Store one message with ``doveadm save`` (no IMAP session involved)."""
        subprocess.run(
            [DOVEADM, "-c", str(self.config_path), "save", "-u", user, "-m", folder],
            input=raw,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def deliver(self, user: str, raw: bytes, *, sender: str = "sender@example.org") -> None:
        """Deliver one message to ``user``'s INBOX over LMTP, as an MTA would."""
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail(sender, [user], raw)
        if refused:
            raise RuntimeError(f"LMTP refused {sorted(refused)}")

    def connections(self, user: str) -> int:
        """How many IMAP connections ``user`` has open now (``doveadm who -1``)."""
        listing = self._doveadm("who", "-1", user)
        return sum(1 for line in listing.splitlines()[1:] if line.split()[:2] == [user, "imap"])

    def kick(self, user: str) -> None:
        """Disconnect every session of ``user`` (what a server restart does to clients)."""
        self._doveadm("kick", user)

    def _doveadm(self, *args: str) -> str:
        done = subprocess.run(
            [DOVEADM, "-c", str(self.config_path), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout

    @contextlib.contextmanager
    def client(self, user: str) -> Iterator[OtherClient]:
        """Another mail client logged in as ``user`` over IMAPS."""
        connection = imaplib.IMAP4_SSL(
            self.host, self.imaps_port, ssl_context=self.ssl_context(), timeout=30
        )
        try:
            _ok(connection.login(user, self.passwords[user]))
            yield OtherClient(connection)
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                connection.logout()

    def log_text(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        for _ in range(10):  # mail processes may still be writing indexes as the master exits
            shutil.rmtree(self.root, ignore_errors=True)
            if not self.root.exists():
                break
            time.sleep(0.1)


@dataclass
class OtherClient:
    """What another IMAP client does to the mailbox; UIDs are the server's."""

    imap: imaplib.IMAP4

    def select(self, folder: str) -> int:
        """Select ``folder``; returns its UIDVALIDITY."""
        _ok(self.imap.select(_quote(folder)))
        return self.uidvalidity(folder)

    def uidvalidity(self, folder: str) -> int:
        typ, data = self.imap.status(_quote(folder), "(UIDVALIDITY)")
        _ok((typ, data))
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        assert match is not None, data
        return int(match.group(1))

    def append(
        self, folder: str, raw: bytes, flags: Sequence[str] = (), *, internal_date: float = 0
    ) -> int:
        """APPEND one message; returns its UID (UIDPLUS APPENDUID)."""
        flag_list = f"({' '.join(flags)})" if flags else None
        when = imaplib.Time2Internaldate(internal_date or time.time())
        typ, data = self.imap.append(_quote(folder), flag_list, when, raw)
        _ok((typ, data))
        match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        assert match is not None, data
        return int(match.group(1))

    def append_many(self, folder: str, messages: Iterable[bytes]) -> None:
        """APPEND many messages in one MULTIAPPEND command with non-synchronising literals
        (LITERAL+): one round trip, which is what makes a 10,000-message mailbox quick."""
        parts = [f"A1 APPEND {_quote(folder)}".encode()]
        for raw in messages:
            parts.append(b" {%d+}\r\n" % len(raw) + raw)
        connection = self.imap
        connection.send(b"".join(parts) + b"\r\n")
        while True:
            line = connection.readline()
            if not line:
                raise RuntimeError("connection closed during APPEND")
            if line.startswith(b"A1 "):
                if not line.startswith(b"A1 OK"):
                    raise RuntimeError(f"APPEND failed: {line!r}")
                return

    def folders(self) -> list[str]:
        """Every selectable mailbox name, as on the wire."""
        typ, data = self.imap.list()
        _ok((typ, data))
        names: list[str] = []
        for line in data:
            assert isinstance(line, bytes), line
            match = re.match(rb'\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$', line)
            assert match is not None, line
            if b"\\Noselect" in match.group("flags"):
                continue
            name = match.group("name").decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            names.append(name)
        return names

    def uids(self, folder: str) -> list[int]:
        self.select(folder)
        typ, data = self.imap.uid("SEARCH", "ALL")
        _ok((typ, data))
        return [int(x) for x in (data[0] or b"").split()]

    def store(self, folder: str, uid: int, change: str, flags: Sequence[str]) -> None:
        """``change`` is ``+FLAGS``, ``-FLAGS`` or ``FLAGS``."""
        self.select(folder)
        _ok(self.imap.uid("STORE", str(uid), change, f"({' '.join(flags)})"))

    def move(self, folder: str, uid: int, target: str) -> None:
        self.select(folder)
        _ok(self.imap.uid("MOVE", str(uid), _quote(target)))

    def copy(self, folder: str, uid: int, target: str) -> None:
        self.select(folder)
        _ok(self.imap.uid("COPY", str(uid), _quote(target)))

    def expunge(self, folder: str, uid: int) -> None:
        """Flag \\Deleted and expunge that one message (UID EXPUNGE, UIDPLUS)."""
        self.select(folder)
        _ok(self.imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"))
        _ok(self.imap.uid("EXPUNGE", str(uid)))

    def create(self, folder: str) -> None:
        _ok(self.imap.create(_quote(folder)))

    def delete(self, folder: str) -> None:
        with contextlib.suppress(imaplib.IMAP4.error):
            self.imap.unselect()
        _ok(self.imap.delete(_quote(folder)))

    def fetch_all(self, folder: str, section: str = "") -> dict[int, tuple[frozenset[str], bytes]]:
        """UID -> (flags, raw message or ``section`` of it) of every message in ``folder``
        (BODY.PEEK: nothing becomes \\Seen)."""
        self.select(folder)
        typ, data = self.imap.uid("FETCH", "1:*", f"(UID FLAGS BODY.PEEK[{section}])")
        _ok((typ, data))
        found: dict[int, tuple[frozenset[str], bytes]] = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = re.search(rb"UID (\d+)", head)
            flags = re.search(rb"FLAGS \(([^)]*)\)", head)
            assert uid is not None, head
            assert flags is not None, head
            found[int(uid.group(1))] = (frozenset(flags.group(1).decode().split()), body)
        return found

    def recreate_with_same_messages(self, folder: str) -> None:
        """Delete ``folder`` and create it again holding the same messages and flags, which
        gives it a new UIDVALIDITY: what a server restore or index rebuild looks like."""
        before = self.fetch_all(folder)
        old_validity = self.uidvalidity(folder)
        self.delete(folder)
        self.create(folder)
        for flags, raw in before.values():
            kept = [flag for flag in flags if flag != "\\Recent"]
            self.append(folder, raw, kept)
        if self.uidvalidity(folder) == old_validity:
            raise RuntimeError("the recreated folder kept its UIDVALIDITY")


def _ok(result: tuple[str, Any]) -> None:
    typ, data = result
    if typ != "OK":
        raise imaplib.IMAP4.error(f"{typ}: {data!r}")


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_dovecot(*, timeout: float = 15.0) -> Dovecot:
    """Write a config into a fresh temporary folder and start Dovecot from it (as root)."""
    if not dovecot_installed():
        raise DovecotMissingError("Dovecot is not installed: run scripts/install-dovecot")
    if os.geteuid() != 0:
        raise DovecotMissingError("the test Dovecot runs as root (it switches to 'nobody')")
    root = Path(tempfile.mkdtemp(prefix="inbox-api-dovecot-"))
    root.chmod(0o755)  # mail processes run as nobody and must reach <root>/home
    try:
        return _start_in(root, timeout)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start_in(root: Path, timeout: float) -> Dovecot:
    tls = create_test_ca(root / "tls")
    home = root / "home"
    home.mkdir()
    shutil.chown(home, MAIL_OWNER, MAIL_GROUP)
    (root / "users").mkdir()
    ports = _distinct_free_ports(3)
    special = "\n".join(
        f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}"
        for name, use in SPECIAL_FOLDERS.items()
    )
    (root / "dovecot.conf").write_text(
        _CONFIG.format(
            root=root,
            host=HOST,
            cert=tls.cert_path,
            key=tls.key_path,
            owner=MAIL_OWNER,
            group=MAIL_GROUP,
            special=special,
            imaps_port=ports[0],
            imap_port=ports[1],
            lmtp_port=ports[2],
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Dovecot(root, tls, ports[0], ports[1], ports[2], process)
    deadline = time.monotonic() + timeout
    while not all(_listening(port) for port in ports):
        if process.poll() is not None:
            error = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
            raise RuntimeError(f"dovecot exited: {error.strip()} {server.log_text()[-2000:]}")
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError("dovecot did not open its ports")
        time.sleep(0.02)
    return server


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(HOST)
        if port not in ports:
            ports.append(port)
    return ports


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False
