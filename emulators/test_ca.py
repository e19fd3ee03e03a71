"""A throwaway certificate authority for serving emulators over https.

MSAL refuses an http authority, and a faithful stand-in for Microsoft (or Google) speaks TLS like
the real thing. `create_test_ca` makes a fresh CA with trustme, issues a server certificate for the
loopback names and writes three PEM files into a directory the caller owns. Clients trust the CA
file and nothing else: never add it to a system trust store.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where the PEM files of a test CA live."""

    ca_path: Path
    """The CA certificate: what clients pass as `verify` (requests) or load into an SSL context."""
    cert_path: Path
    """The server certificate chain, for `ssl_certfile`."""
    key_path: Path
    """The server private key, for `ssl_keyfile`."""

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts only this CA (httpx deprecates `verify=<path>`)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def create_test_ca(directory: Path, hosts: Sequence[str] = LOOPBACK_NAMES) -> TlsFiles:
    """Create a CA and a server certificate for ``hosts``; write them as PEM into ``directory``."""
    import trustme  # a dev dependency: importing TlsFiles must not need it

    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="Inbox API emulator test CA")
    server = authority.issue_cert(*hosts)
    files = TlsFiles(
        ca_path=directory / "test-ca.pem",
        cert_path=directory / "server-cert.pem",
        key_path=directory / "server-key.pem",
    )
    authority.cert_pem.write_to_path(str(files.ca_path))
    files.cert_path.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.key_path))
    return files
