"""Who may do what: bearer tokens for the API, and per-route auth for invocation.

The API (``/v1/...``) is guarded when the server has an admin token (``--admin-token-file``):
every request then carries ``Authorization: Bearer <secret>``, either that bootstrap token or
one made with ``POST /v1/tokens`` and kept (hashed) in the store. With auth off (loopback
without a token, or ``--no-auth``) everyone acts as admin, as before tokens existed.

Invocation is guarded per route, whatever the server's setting: ``auth: "token"`` takes a
store token that covers the app (``invoke``, ``deploy`` or ``admin``); ``auth: "jwt"`` an HS256
JWT signed with the route's ``jwt_key`` (IronFunctions).

Answers never say whether a token exists: missing, malformed, unknown, expired and revoked
are one 401; a 403 is only for a token that is valid but may not do what was asked.

What each scope may do (README, "Running it in production") is the ``Access`` a handler is
marked with, checked by ``Authenticator.authorize`` at the one seam in ``Api.handle``.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import trio

from ..models import MAX_SECRET_LENGTH, Token, hash_secret, secret_shaped
from ..store import Store, StoreError

log = logging.getLogger("hotfn.auth")  # named as before the move: operators filter on it

# A JWT longer than this is refused before it is decoded (headers are capped far above it).
MAX_JWT_LENGTH = 8 * 1024
# JWTs already verified, by (key, JWT): decoding costs tens of microseconds, a hit well under
# one. A JWT cannot be revoked, so its check is a pure function of the two strings and the clock:
# only ``exp`` is compared again. Bounded: cleared when full.
JWT_CACHE_SIZE = 4096
# Store tokens found, by secret hash (misses too), kept while the store's tokens_version stays
# the same: a lookup costs ~50 us, a hit under one. The version is asked at most every
# TOKENS_RECHECK seconds, by the first request after that, and every request waits for the
# answer; so a revoke on any node fails everywhere within TOKENS_RECHECK plus one read of the
# store (README: under a second). Bounded: cleared when full.
TOKENS_RECHECK = 0.25
TOKEN_CACHE_SIZE = 4096


class Access:
    """What an endpoint asks of the token (``Api`` marks each handler with one)."""

    OPEN = "open"  # no token: /health
    ANY = "any"  # any valid token (the handler narrows the answer to the token's apps)
    CALLS = "calls"  # call records of an app: invoke, deploy or admin covering the app
    READ = "read"  # apps, routes and logs of an app: deploy or admin covering the app
    DEPLOY = "deploy"  # change routes and an app's config and secrets: deploy or admin
    ADMIN = "admin"  # everything else, and anything not marked: admin only


_SCOPES_FOR = {
    Access.ANY: ("admin", "deploy", "invoke"),
    Access.CALLS: ("admin", "deploy", "invoke"),
    Access.READ: ("admin", "deploy"),
    Access.DEPLOY: ("admin", "deploy"),
    Access.ADMIN: ("admin",),
}


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self.status == 401:
            return [("www-authenticate", 'Bearer realm="hotfn"')]
        return []


def unauthorized() -> AuthError:
    return AuthError(401, "a valid token is required: send Authorization: Bearer <token>")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    scope: str
    apps: tuple[str, ...] | None  # None: every app
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin" and self.apps is None

    def covers(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def visible(self, apps: Iterable[str]) -> list[str]:
        return [a for a in apps if self.covers(a)]


EVERYONE = Principal("admin", None)  # with auth off
BOOTSTRAP = "bootstrap"  # the token_id of the admin token from --admin-token-file


def bearer(headers: Iterable[tuple[str, str]]) -> str | None:
    """The credentials of ``Authorization: Bearer <x>``; None without that header. A header
    of another scheme, or two of them, is refused (never guessed at)."""
    values = [v for k, v in headers if k == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise unauthorized()
    scheme, _, credentials = values[0].strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise unauthorized()
    return credentials


class Authenticator:
    def __init__(self, store: Store, *, admin_token: str | None, enabled: bool,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.enabled = enabled
        self._admin_hash = hash_secret(admin_token) if admin_token else None
        self._clock = clock
        self._verified_jwts: dict[tuple[str, str], float] = {}  # (key, JWT) -> its exp
        self._monotonic = monotonic
        self._tokens: dict[str, Token | None] = {}  # secret hash -> what the store said
        self._tokens_version: int | None = None  # the store's, when _tokens was filled
        self._tokens_checked_at = float("-inf")  # (monotonic) when that version was asked
        self._tokens_generation = 0  # moves on whenever _tokens is emptied
        self._tokens_lock = trio.Lock()

    def tokens_changed(self) -> None:
        """This node changed the store's tokens: the next lookup asks for the version at once."""
        self._tokens_checked_at = float("-inf")

    async def _current_tokens(self) -> None:
        """Empty the kept tokens if the store's have changed; asks at most every TOKENS_RECHECK."""
        if self._monotonic() - self._tokens_checked_at < TOKENS_RECHECK:
            return
        async with self._tokens_lock:
            asked_at = self._monotonic()
            if asked_at - self._tokens_checked_at < TOKENS_RECHECK:
                return  # another request asked while this one waited
            version = await self.store.tokens_version()
            if version != self._tokens_version:
                self._tokens.clear()
                self._tokens_generation += 1
                self._tokens_version = version
            # From when it was asked: a revoke committed after that is seen by the next ask.
            self._tokens_checked_at = asked_at

    async def _find_token(self, digest: str) -> Token | None:
        await self._current_tokens()
        try:
            return self._tokens[digest]
        except KeyError:
            pass
        generation = self._tokens_generation
        token = await self.store.find_token(digest)
        # Kept only if the kept tokens were not emptied meanwhile: this read may predate the
        # change that emptied them.
        if generation == self._tokens_generation:
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            self._tokens[digest] = token
        return token

    async def principal(self, credentials: str) -> Principal:
        """Who ``credentials`` (a bearer secret) are; AuthError 401 if no one."""
        if len(credentials) > MAX_SECRET_LENGTH:
            raise unauthorized()
        digest = hash_secret(credentials)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal("admin", None, BOOTSTRAP)
        token = await self._find_token(digest)
        if (token is None or not hmac.compare_digest(digest, token.secret_hash)
                or token.expired(self._clock())):
            raise unauthorized()
        return Principal(token.scope, token.apps, token.id)

    async def is_api_token(self, credentials: str) -> bool:
        """Whether ``credentials`` are a secret of hotfn's API: the bootstrap token or a stored
        one, expired included (it is still a secret of the server's)."""
        if len(credentials) > MAX_SECRET_LENGTH:
            return False
        digest = hash_secret(credentials)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return True
        # A JWT (a route's own credential, on every call of it) is never a stored token's shape:
        # no look-up in the store for it.
        if not secret_shaped(credentials):
            return False
        try:
            return await self._find_token(digest) is not None
        except StoreError:
            return True  # (the store cannot say: taken as one, never handed on)

    async def without_api_tokens(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` less any Authorization header that carries one of hotfn's API tokens
        (as ``Bearer <token>``, another scheme, or bare): a function is never handed the caller's
        token, whatever the route's auth. Another credential (a JWT, a function's own) stays."""
        kept = []
        for name, value in headers:
            if name == "authorization":
                scheme, space, credentials = value.strip().partition(" ")
                if await self.is_api_token(credentials.strip() if space else scheme):
                    continue
            kept.append((name, value))
        return kept

    async def authorize(self, headers: Iterable[tuple[str, str]], access: str,
                        app: str | None) -> Principal:
        """Who may go on with an API request needing ``access`` (on ``app``, if it names one);
        AuthError 401 or 403 otherwise."""
        if access == Access.OPEN or not self.enabled:
            return EVERYONE
        credentials = bearer(headers)
        if credentials is None:
            raise unauthorized()
        who = await self.principal(credentials)
        allowed = who.scope in _SCOPES_FOR.get(access, ("admin",))
        if access == Access.ADMIN and not who.is_admin:
            allowed = False
        if app is not None and not who.covers(app):
            allowed = False
        if not allowed:
            raise AuthError(403, f"this token's scope ({who.scope}) does not allow this"
                            + (f" on app {app!r}" if app is not None else ""))
        return who

    async def check_route(self, headers: Iterable[tuple[str, str]], app: str, auth: str,
                          jwt_key: str) -> None:
        """Whether a call of a route with ``auth`` (and ``jwt_key``) may go on; AuthError if not."""
        if auth == "none":
            return
        credentials = bearer(headers)
        if credentials is None:
            raise unauthorized()
        if auth == "token":
            who = await self.principal(credentials)
            if not who.covers(app):
                raise AuthError(403, f"this token does not allow calls of app {app!r}")
            return
        if auth == "jwt" and jwt_key:
            now = self._clock()
            exp = self._verified_jwts.get((jwt_key, credentials))
            if exp is None:
                exp = check_jwt(credentials, jwt_key, now)["exp"]
                if len(self._verified_jwts) >= JWT_CACHE_SIZE:
                    self._verified_jwts.clear()
                self._verified_jwts[(jwt_key, credentials)] = exp
            if now >= exp:
                raise unauthorized()
            return
        # An unknown auth, or "jwt" without a key (a store hand-edited): refuse everyone.
        raise unauthorized()


def check_jwt(credentials: str, key: str, now: float | None = None) -> dict[str, Any]:
    """The claims of an HS256 JWT signed with ``key`` and not expired; AuthError 401 if it is
    anything else (malformed, another algorithm such as "none", a bad signature, no numeric
    exp)."""
    if len(credentials) > MAX_JWT_LENGTH:
        raise unauthorized()
    # Imported here: only a route with auth "jwt" needs PyJWT (~1 MiB), and only when
    # check_route's cache of verified tokens misses.
    import jwt

    try:
        with warnings.catch_warnings():
            # PyJWT warns about short HMAC keys; routes stored before hotfn asked for 32 bytes
            # may have them (README).
            warnings.simplefilter("ignore")
            claims = jwt.decode(credentials, key, algorithms=["HS256"],
                                options={"require": ["exp"]}, leeway=0)
    except jwt.InvalidTokenError:
        raise unauthorized() from None
    except Exception:
        # A library bug must not take the request down with a 500 that hints at anything.
        log.exception("JWT check failed unexpectedly")
        raise unauthorized() from None
    # Outside the try: a refusal here is an answer, not a failure to log. PyJWT takes an exp
    # that int() can read ("9999999999" as a string); the claim must be a JSON number.
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if (isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp)
            or (now is not None and now >= exp)):
        raise unauthorized()
    return claims
