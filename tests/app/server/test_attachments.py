"""GET /attachments/{id}: authenticated, scoped, tenant-checked, streamed as a download."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import unquote

import httpx
import pytest

from app.models import Attachment
from app.services.message_content import register_content_fetcher
from app.types import AccountId, Action
from resolvers.ids import encode_id
from sync.providers.records import AttachmentRecord, MessageContent
from tests.factories import make_account, make_message, make_owner, make_token


class BytesFetcher:
    """Serves attachment bytes in two chunks, as a streaming provider fetch would."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, str | None]] = []

    async def fetch_content(
        self, account_id: AccountId, provider_message_id: str
    ) -> MessageContent:
        raise AssertionError("not used")

    async def fetch_attachment(
        self, account_id: AccountId, provider_message_id: str, attachment: AttachmentRecord
    ) -> AsyncIterator[bytes]:
        self.seen.append((account_id, provider_message_id, attachment.provider_attachment_id))

        async def chunks() -> AsyncIterator[bytes]:
            yield b"<html><script>alert(1)</script>"
            yield b"</html>"

        return chunks()


@pytest.fixture
def fetcher() -> Iterator[BytesFetcher]:
    fake = BytesFetcher()
    previous = register_content_fetcher(fake)
    yield fake
    register_content_fetcher(previous)


async def _attachment(owner: object, **fields: object) -> tuple[Attachment, str]:
    account = await make_account(owner)
    message = await make_message(
        account,
        provider_id="pm-1",
        attachments=[
            {
                "filename": 'Résumé "final".html',
                "content_type": "text/html",
                "size": 39,
                "provider_attachment_id": "att-1",
                **fields,
            }
        ],
    )
    row = await Attachment.get(message_id=message.id)
    return row, "/attachments/" + encode_id("Attachment", row.id)


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_download_streams_as_an_inert_attachment(
    db: object, http: httpx.AsyncClient, fetcher: BytesFetcher
) -> None:
    made = await make_owner()
    _, path = await _attachment(made.owner)
    response = await http.get(path, headers=_auth(made.token))
    assert response.status_code == 200
    assert response.content == b"<html><script>alert(1)</script></html>"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="R_sum_ _final_.html"')
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == "Résumé _final_.html"
    assert fetcher.seen[0][1:] == ("pm-1", "att-1")


async def test_inert_types_are_kept(
    db: object, http: httpx.AsyncClient, fetcher: BytesFetcher
) -> None:
    made = await make_owner()
    _, path = await _attachment(made.owner, content_type="application/PDF; name=x.pdf")
    response = await http.get(path, headers=_auth(made.token))
    assert response.headers["content-type"] == "application/pdf"


async def test_refusals(db: object, http: httpx.AsyncClient, fetcher: BytesFetcher) -> None:
    made = await make_owner()
    other = await make_owner()
    _, path = await _attachment(made.owner)
    missing = "/attachments/" + encode_id("Attachment", 9_999_999_999)

    assert (await http.get(path)).status_code == 401
    assert (await http.get(path, headers=_auth("iapi_nonsense"))).status_code == 401
    metadata_only = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    denied = await http.get(path, headers=_auth(metadata_only))
    assert denied.status_code == 403
    assert denied.json()["errors"][0]["extensions"]["missingScope"] == "messages:content"
    elsewhere = await make_account(made.owner)
    outside = await make_token(made.owner, account_ids=[elsewhere.id])
    foreign = await http.get(path, headers=_auth(other.token))
    unknown = await http.get(missing, headers=_auth(other.token))
    malformed = await http.get("/attachments/xyz", headers=_auth(other.token))
    outside_answer = await http.get(path, headers=_auth(outside))
    assert {r.status_code for r in (foreign, unknown, malformed, outside_answer)} == {404}
    assert foreign.json() == unknown.json() == malformed.json() == outside_answer.json()
    assert fetcher.seen == []


async def test_without_a_fetcher_the_bytes_are_unavailable(
    db: object, http: httpx.AsyncClient
) -> None:
    made = await make_owner()
    _, path = await _attachment(made.owner)
    response = await http.get(path, headers=_auth(made.token))
    assert response.status_code == 503
    assert response.json()["errors"][0]["extensions"]["code"] == "CONTENT_UNAVAILABLE"
