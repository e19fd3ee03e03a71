"""Creating owners and reading or correcting their profile."""

from __future__ import annotations

from app.models import Owner
from app.services.errors import InvalidInput, NotFound
from app.services.tokens import IssuedToken, issue_token
from app.types import ALL_ACTIONS, OwnerId

MAX_NAME = 200
MAX_EMAIL = 320


def _validated(name: str, email: str) -> tuple[str, str]:
    name, email = name.strip(), email.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > MAX_EMAIL or any(c.isspace() for c in email):
        raise InvalidInput("email is not a valid address", field="email")
    return name, email


async def create_owner(name: str, email: str) -> tuple[Owner, IssuedToken]:
    """Create an owner with a first token that holds every action on every account."""
    name, email = _validated(name, email)
    owner = await Owner.create(name=name, email=email)
    issued = await issue_token(
        OwnerId(owner.id), name="owner token", actions=ALL_ACTIONS, account_ids=None
    )
    return owner, issued


async def get_owner(owner_id: OwnerId) -> Owner:
    owner = await Owner.get_or_none(id=owner_id, terminated_at=None)
    if owner is None:
        raise NotFound("owner not found")
    return owner


async def update_profile(owner_id: OwnerId, *, name: str | None, email: str | None) -> Owner:
    """Correction: the owner updates their own name and email."""
    owner = await get_owner(owner_id)
    new_name, new_email = _validated(
        owner.name if name is None else name, owner.email if email is None else email
    )
    owner.name, owner.email = new_name, new_email
    await owner.save(update_fields=["name", "email"])
    return owner
