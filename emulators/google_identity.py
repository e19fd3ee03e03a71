"""Emulated Google OAuth 2.0 authorization server (accounts.google.com / oauth2.googleapis.com).

The real ``google_auth_oauthlib.flow.Flow`` and ``google.oauth2.credentials.Credentials`` run
against it unchanged, configured with ``auth_uri = BASE + AUTH_PATH`` and ``token_uri = BASE +
TOKEN_PATH``. Routes:

    GET  /o/oauth2/auth          consent: auto-approves a test user (``login_hint`` or the default
                                 one) and redirects 302 to ``redirect_uri?code=...&state=...``
    POST /token                  grant_type=authorization_code (PKCE S256/plain, single-use codes)
                                 and grant_type=refresh_token
    POST /revoke                 revokes the whole grant an access or refresh token belongs to
    GET  /oauth2/v3/userinfo     sub, email, email_verified for a bearer token

Google's awkward parts, kept on purpose: a refresh token comes only with ``access_type=offline``
and only on the first consent of a user to a client (or with ``prompt=consent``); a revoked grant
answers ``400 {"error": "invalid_grant", "error_description": "Token has been expired or
revoked."}``; revoking kills the grant's access tokens at once; codes are single-use.

Tests drive it from Python (``register_client``, ``add_user``, ``issue_tokens``, ``revoke``,
``expire_access_tokens``). It holds no Gmail state: ``emulators.gmail_emulator`` shares one
instance between these routes and the Gmail API, which calls ``authenticate`` per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

AUTH_PATH = "/o/oauth2/auth"
TOKEN_PATH = "/token"  # noqa: S105 - a URL path, not a secret
REVOKE_PATH = "/revoke"
USERINFO_PATH = "/oauth2/v3/userinfo"
ISSUER = "https://accounts.google.com"
CODE_LIFETIME = 600.0
REVOKED = "Token has been expired or revoked."


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class TestUser:
    email: str
    sub: str
    approve: bool


@dataclass(frozen=True)
class AccessTokenInfo:
    """What a valid access token stands for."""

    email: str
    client_id: str
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_in: int
    scope: str
    id_token: str | None = None


@dataclass
class _Grant:
    """One user's consent to one client: its refresh tokens (with the scopes each was granted
    for) and whether the user revoked it."""

    email: str
    client_id: str
    refresh_tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    revoked: bool = False


@dataclass(frozen=True)
class _AccessToken:
    grant: _Grant
    scopes: frozenset[str]
    expires_at: float


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    email: str
    scopes: frozenset[str]
    challenge: str | None
    method: str | None
    offline: bool
    force_consent: bool
    expires_at: float


class OAuthError(Exception):
    """An error answered by the token or revoke endpoint as ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status)


class GoogleIdentity:
    """Clients, test users, grants and tokens of the emulated Google identity server."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        access_token_lifetime: int = 3599,
    ) -> None:
        self._clock = clock
        self.access_token_lifetime = access_token_lifetime
        self._lock = threading.Lock()
        self._clients: dict[str, OAuthClient] = {}
        self._users: dict[str, TestUser] = {}
        self._default_user: str | None = None
        self._codes: dict[str, _Code] = {}
        self._grants: dict[tuple[str, str], _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, _AccessToken] = {}

    # -- set-up by tests ------------------------------------------------------------------

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str]
    ) -> OAuthClient:
        client = OAuthClient(client_id, client_secret, tuple(redirect_uris))
        with self._lock:
            self._clients[client_id] = client
        return client

    def client(self, client_id: str) -> OAuthClient:
        with self._lock:
            return self._clients[client_id]

    def add_user(self, email: str, *, approve: bool = True, default: bool = False) -> TestUser:
        """A Google account; with ``approve=False`` it declines consent (``access_denied``).

        The first user added (or one added with ``default=True``) consents when the
        authorization request carries no ``login_hint``.
        """
        key = email.lower()
        sub = str(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
        user = TestUser(key, sub, approve)
        with self._lock:
            self._users[key] = user
            if default or self._default_user is None:
                self._default_user = key
        return user

    def issue_tokens(
        self, email: str, client_id: str, scopes: Iterable[str], *, offline: bool = True
    ) -> TokenSet:
        """Tokens as a consent with ``prompt=consent`` gives them, without the browser round trip:
        with ``offline`` (the default) each call brings a new refresh token."""
        with self._lock:
            if email.lower() not in self._users or client_id not in self._clients:
                raise KeyError(f"unknown user {email!r} or client {client_id!r}")
            return self._consent(email.lower(), client_id, frozenset(scopes), offline, True)

    # -- control by tests -----------------------------------------------------------------

    def revoke(self, email: str, client_id: str | None = None) -> int:
        """The user removes the app's access (all apps without ``client_id``); returns count."""
        with self._lock:
            grants = [
                g
                for (user, client), g in self._grants.items()
                if user == email.lower() and client_id in (None, client)
            ]
            for grant in grants:
                self._revoke(grant)
            return len(grants)

    def expire_access_tokens(self, email: str | None = None) -> None:
        """Make every live access token (of ``email``, or everyone's) expire now."""
        now = self._clock()
        with self._lock:
            for token, access in list(self._access.items()):
                if email is None or access.grant.email == email.lower():
                    self._access[token] = _AccessToken(access.grant, access.scopes, now)

    # -- used by the Gmail API ------------------------------------------------------------

    def authenticate(self, access_token: str) -> AccessTokenInfo | None:
        """The token's user and scopes, or None if unknown, expired or revoked."""
        with self._lock:
            access = self._access.get(access_token)
            if access is None or access.grant.revoked or self._clock() >= access.expires_at:
                return None
            grant = access.grant
            return AccessTokenInfo(grant.email, grant.client_id, access.scopes, access.expires_at)

    # -- HTTP -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route(AUTH_PATH, self._authorize, methods=["GET"]),
            Route(TOKEN_PATH, self._token, methods=["POST"]),
            Route(REVOKE_PATH, self._revoke_endpoint, methods=["POST"]),
            Route(USERINFO_PATH, self._userinfo, methods=["GET"]),
        ]

    async def _authorize(self, request: Request) -> Response:
        params = request.query_params
        with self._lock:
            client = self._clients.get(params.get("client_id", ""))
            if client is None:
                return _error_page(401, "invalid_client", "The OAuth client was not found.")
            redirect_uri = params.get("redirect_uri", "")
            if redirect_uri not in client.redirect_uris:
                return _error_page(400, "redirect_uri_mismatch", f"Unregistered: {redirect_uri}")
            user = self._users.get(params.get("login_hint", self._default_user or "").lower())
            if user is None:
                return _error_page(400, "invalid_request", "login_hint names no test user")
            state = params.get("state")
            problem = _authorization_problem(params)
            if problem is None and not user.approve:
                problem = ("access_denied", "The user declined consent.")
            if problem is not None:
                error, description = problem
                query = {"error": error, "error_description": description}
                return _redirect(redirect_uri, query, state)
            code = "4/0" + secrets.token_urlsafe(32)
            challenge = params.get("code_challenge")
            scopes = frozenset(params.get("scope", "").split())
            self._codes[code] = _Code(
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                email=user.email,
                scopes=scopes,
                challenge=challenge,
                method=params.get("code_challenge_method", "plain") if challenge else None,
                offline=params.get("access_type") == "offline",
                force_consent="consent" in params.get("prompt", "").split(),
                expires_at=self._clock() + CODE_LIFETIME,
            )
        return _redirect(redirect_uri, {"code": code, "scope": " ".join(sorted(scopes))}, state)

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            with self._lock:
                client = self._client_from(request, form)
                grant_type = form.get("grant_type")
                if grant_type == "authorization_code":
                    tokens = self._exchange_code(client, form)
                elif grant_type == "refresh_token":
                    tokens = self._refresh_grant(client, form)
                else:
                    raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        except OAuthError as exc:
            return exc.response()
        body: dict[str, Any] = {
            "access_token": tokens.access_token,
            "expires_in": tokens.expires_in,
            "scope": tokens.scope,
            "token_type": "Bearer",
        }
        if tokens.refresh_token:
            body["refresh_token"] = tokens.refresh_token
        if tokens.id_token:
            body["id_token"] = tokens.id_token
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _revoke_endpoint(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        token = request.query_params.get("token") or form.get("token", "")
        with self._lock:
            grant = self._refresh.get(token) or getattr(self._access.get(token), "grant", None)
            if grant is None or grant.revoked:
                return OAuthError("invalid_token", "Token expired or revoked").response()
            self._revoke(grant)
        return JSONResponse({})

    async def _userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        info = self.authenticate(token)
        if info is None:
            return OAuthError("invalid_request", "Invalid Credentials", 401).response()
        user = self._users[info.email]
        return JSONResponse({"sub": user.sub, "email": user.email, "email_verified": True})

    # -- internals (lock held) ------------------------------------------------------------

    def _client_from(self, request: Request, form: dict[str, str]) -> OAuthClient:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            client_id, _, secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        if not hmac.compare_digest(client.client_secret, secret):
            raise OAuthError("invalid_client", "Unauthorized", 401)
        return client

    def _exchange_code(self, client: OAuthClient, form: dict[str, str]) -> TokenSet:
        code = self._codes.pop(form.get("code", ""), None)  # single use, even when it fails
        if code is None or code.expires_at <= self._clock() or code.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Bad Request")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_grant", "Missing code verifier.")
            if not hmac.compare_digest(_challenge(verifier, code.method), code.challenge):
                raise OAuthError("invalid_grant", "Invalid code verifier.")
        return self._consent(
            code.email, client.client_id, code.scopes, code.offline, code.force_consent
        )

    def _refresh_grant(self, client: OAuthClient, form: dict[str, str]) -> TokenSet:
        refresh_token = form.get("refresh_token", "")
        grant = self._refresh.get(refresh_token)
        if grant is None or grant.revoked:
            raise OAuthError("invalid_grant", REVOKED)
        if grant.client_id != client.client_id:
            raise OAuthError("unauthorized_client", "Unauthorized")
        granted = grant.refresh_tokens[refresh_token]
        scopes = frozenset(form.get("scope", "").split()) or granted
        if not scopes <= granted:
            raise OAuthError("invalid_scope", "Some requested scopes were invalid.")
        return self._token_set(grant, scopes, None)

    def _consent(
        self, email: str, client_id: str, scopes: frozenset[str], offline: bool, force: bool
    ) -> TokenSet:
        grant = self._grants.get((email, client_id))
        first_consent = grant is None
        if grant is None:
            grant = _Grant(email, client_id)
            self._grants[(email, client_id)] = grant
        refresh_token = None
        # Google hands out a refresh token on the first consent only, unless forced again.
        if offline and (first_consent or force):
            refresh_token = "1//" + secrets.token_urlsafe(48)
            grant.refresh_tokens[refresh_token] = scopes
            self._refresh[refresh_token] = grant
        return self._token_set(grant, scopes, refresh_token)

    def _token_set(
        self, grant: _Grant, scopes: frozenset[str], refresh_token: str | None
    ) -> TokenSet:
        now = self._clock()
        # Forget expired tokens here, so long-running emulators do not grow without bound.
        for stale in [t for t, a in self._access.items() if a.expires_at <= now]:
            del self._access[stale]
        access_token = "ya29." + secrets.token_urlsafe(48)
        self._access[access_token] = _AccessToken(grant, scopes, now + self.access_token_lifetime)
        id_token = self._id_token(grant, now) if "openid" in scopes else None
        lifetime = self.access_token_lifetime
        return TokenSet(access_token, refresh_token, lifetime, _scope(scopes), id_token)

    def _revoke(self, grant: _Grant) -> None:
        grant.revoked = True
        self._grants.pop((grant.email, grant.client_id), None)
        for token in grant.refresh_tokens:
            self._refresh.pop(token, None)
        for token in [t for t, a in self._access.items() if a.grant is grant]:
            del self._access[token]

    def _id_token(self, grant: _Grant, now: float) -> str:
        """An HS256 JWT signed with the client secret (Google signs RS256 with its own keys)."""
        client = self._clients[grant.client_id]
        claims = {
            "iss": ISSUER,
            "aud": client.client_id,
            "azp": client.client_id,
            "sub": self._users[grant.email].sub,
            "email": grant.email,
            "email_verified": True,
            "iat": int(now),
            "exp": int(now) + self.access_token_lifetime,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
        mac = hmac.new(client.client_secret.encode(), signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{_b64(mac.digest())}"


def _authorization_problem(params: Any) -> tuple[str, str] | None:
    if params.get("response_type") != "code":
        return ("unsupported_response_type", "Only response_type=code is supported.")
    if not params.get("scope", "").split():
        return ("invalid_request", "Missing required parameter: scope")
    if params.get("access_type", "online") not in ("online", "offline"):
        return ("invalid_request", "Invalid access_type")
    method = params.get("code_challenge_method")
    if method is not None and (method not in ("S256", "plain") or not params.get("code_challenge")):
        return ("invalid_request", "Invalid code_challenge_method or missing code_challenge")
    return None


def _challenge(verifier: str, method: str | None) -> str:
    if method == "S256":
        return _b64(hashlib.sha256(verifier.encode()).digest())
    return verifier


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _scope(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


def _redirect(redirect_uri: str, params: dict[str, str], state: str | None) -> Response:
    if state is not None:
        params = {**params, "state": state}
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(params)}", status_code=302)


def _error_page(status: int, error: str, description: str) -> Response:
    body = f"<html><body><h1>Error {status}: {escape(error)}</h1><p>{escape(description)}</p>"
    return HTMLResponse(body + "</body></html>", status_code=status)
