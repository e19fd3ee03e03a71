"""The Microsoft identity platform (v2 endpoints), as far as MSAL's auth-code flow needs it.

Serves, over https (MSAL refuses anything else), for any path tenant that names this directory
(`common`, `organizations`, the tenant id or its domain):

    /{tenant}/v2.0/.well-known/openid-configuration   OpenID configuration (endpoints -> here)
    /{tenant}/discovery/v2.0/keys                      JWKS (RS256 key that signs every token)
    /{tenant}/oauth2/v2.0/authorize                    auto-approves a configured user, 302s back
    /{tenant}/oauth2/v2.0/token                        authorization_code (+PKCE), refresh_token

Errors follow the platform: a bad client id or redirect URI is an error page (never a redirect),
other authorize errors go back to the redirect URI as `error`/`error_description`, and the token
endpoint answers AADSTS JSON (`invalid_grant` 400 for revoked, redeemed or unknown grants).

`IdentityPlatform` owns the directory (apps, users, grants, tokens) behind one lock; Graph asks it
to `verify_access_token`. Test controls are plain methods here; their HTTP twins live in
`emulators/graph_control.py`. This module never serves mail and never trusts a token it did not
issue itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote_plus, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from emulators.graph_types import Clock, JSONObject

GRAPH_RESOURCE = "https://graph.microsoft.com/"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT_APP_SCOPES = ("Mail.ReadWrite", "Mail.Send", "User.Read")
AUTH_CODE_LIFETIME = 600.0
ID_TOKEN_CLAIMS = (
    "aud",
    "exp",
    "iat",
    "iss",
    "name",
    "nbf",
    "nonce",
    "oid",
    "preferred_username",
    "sub",
    "tid",
)
RESPONSE_MODES = ("query", "fragment", "form_post")


class InvalidAccessTokenError(Exception):
    """A bearer token this platform did not issue, or one that expired."""


class TokenEndpointError(Exception):
    """An OAuth error answered by the token endpoint (or carried back from authorize)."""

    def __init__(self, error: str, aadsts: int, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: AADSTS{aadsts}: {description}")
        self.error = error
        self.aadsts = aadsts
        self.description = description
        self.status = status


class AuthorizePageError(Exception):
    """An authorize request too wrong to redirect anywhere: the platform shows an error page."""

    def __init__(self, aadsts: int, description: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {description}")


@dataclass(frozen=True)
class AuthorizeAnswer:
    """What the authorize endpoint sends back to the app, in the app's response_mode."""

    redirect_uri: str
    response_mode: str
    fields: dict[str, str]

    def to_response(self) -> Response:
        if self.response_mode == "form_post":
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                for k, v in self.fields.items()
            )
            page = (
                "<html><head><title>Working...</title></head><body>"
                f'<form method="POST" name="hiddenform" action="{html.escape(self.redirect_uri)}">'
                f"{inputs}<noscript><p>Script is disabled. Click Submit to continue.</p>"
                '<input type="submit" value="Submit"/></noscript></form>'
                "<script>document.forms[0].submit();</script></body></html>"
            )
            return HTMLResponse(page)
        separator = "#" if self.response_mode == "fragment" else "?"
        return RedirectResponse(
            f"{self.redirect_uri}{separator}{urlencode(self.fields)}", status_code=302
        )


@dataclass(frozen=True)
class RegisteredApp:
    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    default_scopes: tuple[str, ...] = DEFAULT_APP_SCOPES
    """What `https://graph.microsoft.com/.default` grants."""


@dataclass(frozen=True)
class DirectoryUser:
    oid: str
    tenant_id: str
    username: str
    display_name: str


@dataclass(frozen=True)
class AccessTokenInfo:
    """What a resource server (Graph) learns from a valid access token."""

    oid: str
    tenant_id: str
    client_id: str
    scopes: frozenset[str]
    """Resource scopes without the Graph prefix, e.g. {"Mail.Read", "Mail.Send"}."""
    expires_at: float


@dataclass
class _AuthCode:
    client_id: str
    redirect_uri: str
    oid: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    nonce: str | None
    expires_at: float
    redeemed: bool = False


@dataclass
class _RefreshToken:
    oid: str
    client_id: str
    revoked: bool = False


@dataclass
class _IssuedAccessToken:
    info: AccessTokenInfo
    expired: bool = False


@dataclass
class _Directory:
    apps: dict[str, RegisteredApp] = field(default_factory=dict)
    users: dict[str, DirectoryUser] = field(default_factory=dict)
    codes: dict[str, _AuthCode] = field(default_factory=dict)
    grants: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(user oid, client id) -> the scopes the user consented to."""
    refresh_tokens: dict[str, _RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, _IssuedAccessToken] = field(default_factory=dict)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def graph_scope(scope: str) -> str:
    """`https://graph.microsoft.com/Mail.Read` and `Mail.Read` name the same permission."""
    return scope[len(GRAPH_RESOURCE) :] if scope.startswith(GRAPH_RESOURCE) else scope


class IdentityPlatform:
    """The directory and token service of one emulated tenant."""

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        tenant_domain: str = "emulator.onmicrosoft.com",
        clock: Clock = time.time,
        access_token_lifetime: int = 3599,
        require_pkce: bool = True,
    ) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tenant_domain = tenant_domain
        self.access_token_lifetime = access_token_lifetime
        self.require_pkce = require_pkce
        self.clock = clock
        self._lock = threading.Lock()
        self._directory = _Directory()
        self._default_username: str | None = None
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = _b64url(secrets.token_bytes(12))

    # -- test controls ------------------------------------------------------------------------

    def register_app(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: Iterable[str],
        default_scopes: Iterable[str] = DEFAULT_APP_SCOPES,
    ) -> RegisteredApp:
        """Register (or replace) an app registration; `client_secret=None` is a public client."""
        app = RegisteredApp(client_id, client_secret, tuple(redirect_uris), tuple(default_scopes))
        with self._lock:
            self._directory.apps[client_id] = app
        return app

    def add_user(
        self, username: str, display_name: str = "", *, oid: str | None = None
    ) -> DirectoryUser:
        """Add a user; the first one added signs in when the authorize request has no hint."""
        user = DirectoryUser(
            oid=oid or str(uuid.uuid4()),
            tenant_id=self.tenant_id,
            username=username,
            display_name=display_name or username.split("@", 1)[0],
        )
        with self._lock:
            self._directory.users[user.oid] = user
            if self._default_username is None:
                self._default_username = username
        return user

    def set_default_user(self, user_ref: str) -> None:
        """Choose who signs in when the authorize request carries no login_hint."""
        username = self.user(user_ref).username
        with self._lock:
            self._default_username = username

    def user(self, user_ref: str) -> DirectoryUser:
        """Find a user by object id or username (case-insensitive); KeyError if unknown."""
        with self._lock:
            return self._find_user(user_ref)

    def revoke_grants(self, user_ref: str, client_id: str | None = None) -> None:
        """The user withdraws consent: every refresh token of the grant answers invalid_grant."""
        oid = self.user(user_ref).oid
        with self._lock:
            for refresh_token in self._directory.refresh_tokens.values():
                if refresh_token.oid == oid and client_id in (None, refresh_token.client_id):
                    refresh_token.revoked = True

    def expire_access_tokens(self, user_ref: str | None = None) -> None:
        """Make the access tokens issued so far (to one user, or all) fail as expired."""
        oid = self.user(user_ref).oid if user_ref else None
        with self._lock:
            for issued in self._directory.access_tokens.values():
                if oid in (None, issued.info.oid):
                    issued.expired = True

    def issue_access_token(
        self, user_ref: str, client_id: str, scopes: Iterable[str] = DEFAULT_APP_SCOPES
    ) -> str:
        """Mint an access token directly, for tests that are not about the OAuth dance."""
        user = self.user(user_ref)
        with self._lock:
            app = self._app(client_id)
            return self._mint_access_token(user, app, tuple(scopes))

    # -- what Graph asks -----------------------------------------------------------------------

    def verify_access_token(self, token: str) -> AccessTokenInfo:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidAccessTokenError("IDX14100: JWT is not well formed.")
        try:
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
            self._signing_key.public_key().verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception as error:
            raise InvalidAccessTokenError("Invalid signature.") from error
        with self._lock:
            issued = self._directory.access_tokens.get(str(claims.get("uti")))
        if issued is None:
            raise InvalidAccessTokenError("Invalid token.")
        if issued.expired or self.clock() >= issued.info.expires_at:
            raise InvalidAccessTokenError("Lifetime validation failed, the token is expired.")
        return issued.info

    # -- protocol -----------------------------------------------------------------------------

    def knows_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {"common", "organizations", self.tenant_id, self.tenant_domain}

    def openid_configuration(self, base_url: str, tenant: str) -> JSONObject:
        issuer_tenant = "{tenantid}" if tenant in ("common", "organizations") else self.tenant_id
        prefix = f"{base_url}/{tenant}"
        return {
            "token_endpoint": f"{prefix}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": f"{prefix}/discovery/v2.0/keys",
            "response_modes_supported": ["query"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "scopes_supported": sorted(OIDC_SCOPES),
            "issuer": f"{base_url}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{prefix}/oauth2/v2.0/authorize",
            "end_session_endpoint": f"{prefix}/oauth2/v2.0/logout",
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ID_TOKEN_CLAIMS,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def jwks(self) -> JSONObject:
        numbers = self._signing_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self._key_id,
                    "alg": "RS256",
                    "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }

    def authorize(self, params: Mapping[str, str]) -> AuthorizeAnswer:
        """Validate an authorize request and say what goes back to the redirect URI.

        Raises `AuthorizePageError` when the request cannot be trusted to redirect anywhere.
        """
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        response_mode = params.get("response_mode", "query")
        with self._lock:
            app = self._directory.apps.get(client_id)
            if app is None:
                raise AuthorizePageError(
                    700016, f"Application with identifier '{client_id}' was not found."
                )
            if redirect_uri not in app.redirect_uris:
                raise AuthorizePageError(
                    50011,
                    f"The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{client_id}'.",
                )
            if response_mode not in RESPONSE_MODES:
                raise AuthorizePageError(900144, f"Invalid response_mode '{response_mode}'.")
            fields = {"state": params["state"]} if "state" in params else {}
            try:
                code, user = self._issue_code(app, redirect_uri, params)
            except TokenEndpointError as error:
                fields |= {
                    "error": error.error,
                    "error_description": f"AADSTS{error.aadsts}: {error.description}",
                }
                return AuthorizeAnswer(redirect_uri, response_mode, fields)
        fields |= {"code": code, "session_state": str(uuid.uuid4())}
        if params.get("client_info") == "1":
            fields["client_info"] = self._client_info(user)
        return AuthorizeAnswer(redirect_uri, response_mode, fields)

    def token(
        self, form: Mapping[str, str], basic_auth: tuple[str, str] | None, base_url: str
    ) -> JSONObject:
        """Answer a token request; raises `TokenEndpointError` with the platform's error."""
        client_id, secret = basic_auth or (form.get("client_id", ""), form.get("client_secret"))
        grant_type = form.get("grant_type", "")
        with self._lock:
            app = self._authenticate_client(client_id, secret)
            if grant_type == "authorization_code":
                user, scopes, nonce = self._redeem_code(app, form)
            elif grant_type == "refresh_token":
                user, scopes = self._redeem_refresh_token(app, form)
                nonce = None
            else:
                raise TokenEndpointError(
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{grant_type}'.",
                )
            return self._token_response(app, user, scopes, nonce, form, base_url)

    # -- internals (called with the lock held) -------------------------------------------------

    def _find_user(self, user_ref: str) -> DirectoryUser:
        users = self._directory.users
        if user_ref in users:
            return users[user_ref]
        for user in users.values():
            if user.username.lower() == user_ref.lower():
                return user
        raise KeyError(f"no such user: {user_ref}")

    def _app(self, client_id: str) -> RegisteredApp:
        app = self._directory.apps.get(client_id)
        if app is None:
            raise TokenEndpointError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        return app

    def _authenticate_client(self, client_id: str, secret: str | None) -> RegisteredApp:
        app = self._app(client_id)
        if app.client_secret is not None and not (
            secret and secrets.compare_digest(secret, app.client_secret)
        ):
            raise TokenEndpointError(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                f"the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
                status=401,
            )
        return app

    def _issue_code(
        self, app: RegisteredApp, redirect_uri: str, params: Mapping[str, str]
    ) -> tuple[str, DirectoryUser]:
        if params.get("response_type") != "code":
            raise TokenEndpointError(
                "unsupported_response_type",
                700054,
                "response_type 'code' is the only one this emulator supports.",
            )
        scopes = tuple(params.get("scope", "").split())
        if not scopes:
            raise TokenEndpointError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        challenge = params.get("code_challenge")
        if challenge is None and self.require_pkce:
            raise TokenEndpointError(
                "invalid_request", 9002325, "Proof Key for Code Exchange is required."
            )
        if challenge is not None and params.get("code_challenge_method") != "S256":
            raise TokenEndpointError(
                "invalid_request", 501491, "Invalid code_challenge_method: only S256 is accepted."
            )
        hint = params.get("login_hint") or self._default_username
        try:
            user = self._find_user(hint or "")
        except KeyError:
            raise TokenEndpointError(
                "invalid_request",
                50034,
                f"The user account {hint} does not exist in the {self.tenant_domain} directory.",
            ) from None
        code = "1.A" + _b64url(secrets.token_bytes(48))
        self._directory.codes[code] = _AuthCode(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            oid=user.oid,
            scopes=scopes,
            code_challenge=challenge,
            nonce=params.get("nonce"),
            expires_at=self.clock() + AUTH_CODE_LIFETIME,
        )
        return code, user

    def _redeem_code(
        self, app: RegisteredApp, form: Mapping[str, str]
    ) -> tuple[DirectoryUser, tuple[str, ...], str | None]:
        issued = self._directory.codes.get(form.get("code", ""))
        if issued is None or issued.client_id != app.client_id:
            raise TokenEndpointError(
                "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if issued.redeemed:
            raise TokenEndpointError(
                "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
            )
        if self.clock() > issued.expires_at:
            raise TokenEndpointError("invalid_grant", 70008, "The provided code has expired.")
        if form.get("redirect_uri") != issued.redirect_uri:
            raise TokenEndpointError(
                "invalid_grant",
                50148,
                "The redirect_uri does not match the one used in the authorization request.",
            )
        if issued.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
            if not secrets.compare_digest(digest, issued.code_challenge):
                raise TokenEndpointError(
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        issued.redeemed = True
        self._directory.grants.setdefault((issued.oid, app.client_id), set()).update(issued.scopes)
        return self._directory.users[issued.oid], issued.scopes, issued.nonce

    def _redeem_refresh_token(
        self, app: RegisteredApp, form: Mapping[str, str]
    ) -> tuple[DirectoryUser, tuple[str, ...]]:
        issued = self._directory.refresh_tokens.get(form.get("refresh_token", ""))
        if issued is None or issued.client_id != app.client_id:
            raise TokenEndpointError(
                "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if issued.revoked:
            raise TokenEndpointError(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        granted = self._directory.grants[(issued.oid, issued.client_id)]
        requested = tuple(form.get("scope", "").split()) or tuple(sorted(granted))
        missing = {graph_scope(s) for s in requested} - {graph_scope(s) for s in granted}
        if missing - OIDC_SCOPES:
            raise TokenEndpointError(
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}'. Send an interactive authorization request for this user "
                "and resource.",
            )
        return self._directory.users[issued.oid], requested

    def _token_response(
        self,
        app: RegisteredApp,
        user: DirectoryUser,
        scopes: tuple[str, ...],
        nonce: str | None,
        form: Mapping[str, str],
        base_url: str,
    ) -> JSONObject:
        lifetime = self.access_token_lifetime
        response: JSONObject = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "offline_access"),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._mint_access_token(user, app, scopes),
        }
        if "offline_access" in scopes:
            refresh_token = "1.A" + _b64url(secrets.token_bytes(96))
            self._directory.refresh_tokens[refresh_token] = _RefreshToken(user.oid, app.client_id)
            response["refresh_token"] = refresh_token
        if "openid" in scopes:
            response["id_token"] = self._id_token(user, app, nonce, base_url)
        if form.get("client_info") == "1":
            response["client_info"] = self._client_info(user)
        return response

    def _mint_access_token(
        self, user: DirectoryUser, app: RegisteredApp, scopes: tuple[str, ...]
    ) -> str:
        resource_scopes: set[str] = set()
        for scope in map(graph_scope, scopes):
            if scope == ".default":
                resource_scopes.update(app.default_scopes)
            elif scope not in OIDC_SCOPES:
                resource_scopes.add(scope)
        now = self.clock()
        uti = _b64url(secrets.token_bytes(16))
        info = AccessTokenInfo(
            oid=user.oid,
            tenant_id=user.tenant_id,
            client_id=app.client_id,
            scopes=frozenset(resource_scopes),
            expires_at=now + self.access_token_lifetime,
        )
        self._directory.access_tokens[uti] = _IssuedAccessToken(info)
        return self._sign(
            {
                "aud": "00000003-0000-0000-c000-000000000000",
                "iss": f"https://sts.windows.net/{user.tenant_id}/",
                "iat": int(now),
                "nbf": int(now),
                "exp": int(info.expires_at),
                "appid": app.client_id,
                "name": user.display_name,
                "oid": user.oid,
                "scp": " ".join(sorted(resource_scopes)),
                "tid": user.tenant_id,
                "upn": user.username,
                "uti": uti,
                "ver": "1.0",
            }
        )

    def _id_token(
        self, user: DirectoryUser, app: RegisteredApp, nonce: str | None, base_url: str
    ) -> str:
        now = int(self.clock())
        claims: JSONObject = {
            "aud": app.client_id,
            "iss": f"{base_url}/{user.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + self.access_token_lifetime,
            "name": user.display_name,
            "oid": user.oid,
            "preferred_username": user.username,
            "sub": _b64url(hashlib.sha256(f"{user.oid}:{app.client_id}".encode()).digest()),
            "tid": user.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign(claims)

    def _client_info(self, user: DirectoryUser) -> str:
        return _b64url(json.dumps({"uid": user.oid, "utid": user.tenant_id}).encode())

    def _sign(self, claims: JSONObject) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self._key_id}
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._signing_key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64url(signature)}"


def token_error_body(error: TokenEndpointError, clock: Clock = time.time) -> JSONObject:
    """The JSON the platform answers for a failed token request."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error.error,
        "error_description": (
            f"AADSTS{error.aadsts}: {error.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [error.aadsts],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={error.aadsts}",
    }


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def identity_routes(platform: IdentityPlatform) -> list[BaseRoute]:
    """The platform's endpoints, to mount in any Starlette app."""

    def tenant_not_found(tenant: str) -> Response:
        error = TokenEndpointError(
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud.",
        )
        return JSONResponse(token_error_body(error, platform.clock), status_code=400)

    async def openid_configuration(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not platform.knows_tenant(tenant):
            return tenant_not_found(tenant)
        return JSONResponse(platform.openid_configuration(_base_url(request), tenant))

    async def keys(request: Request) -> Response:
        return JSONResponse(platform.jwks())

    async def authorize(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not platform.knows_tenant(tenant):
            return tenant_not_found(tenant)
        params = dict(request.query_params)
        if request.method == "POST":
            params |= {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            answer = platform.authorize(params)
        except AuthorizePageError as error:
            page = f"<html><body><h1>Sign in</h1><p>{html.escape(str(error))}</p></body></html>"
            return HTMLResponse(page, status_code=400)
        return answer.to_response()

    async def token(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not platform.knows_tenant(tenant):
            return tenant_not_found(tenant)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            body = platform.token(form, _basic_auth(request), _base_url(request))
        except TokenEndpointError as error:
            return JSONResponse(token_error_body(error, platform.clock), status_code=error.status)
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache"})

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    ]


def create_identity_app(platform: IdentityPlatform) -> Starlette:
    """A Starlette app serving only the identity platform (serve it over https)."""
    return Starlette(routes=identity_routes(platform))


def parse_access_token_claims(token: str) -> dict[str, Any]:
    """Decode (without verifying) a token's claims, for tests that want to look inside."""
    claims: dict[str, Any] = json.loads(_b64url_decode(token.split(".")[1]))
    return claims


class _FormPostReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = attributes.get("action", "")
        elif tag == "input" and attributes.get("type") == "hidden":
            self.fields[attributes.get("name", "")] = attributes.get("value", "")


def read_form_post(page: str) -> tuple[str, dict[str, str]]:
    """What a browser would POST from a `response_mode=form_post` page: (action URL, fields)."""
    reader = _FormPostReader()
    reader.feed(page)
    return reader.action, reader.fields
