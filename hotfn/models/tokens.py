"""API tokens: what one is, how its secret is made and kept, and the rules its fields follow.

A token's secret is 32 random bytes (URL-safe base64), shown to its creator once. The store
keeps only the SHA-256 of it: the secret is random, not a password, so a plain hash cannot be
reversed by guessing and keeps the check one hash and one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .app import check_app_name
from .fields import ValidationError

log = logging.getLogger("hotfn.tokens")  # named as before the move: operators filter on it

SCOPES = ("admin", "deploy", "invoke")
MAX_TOKEN_NAME = 128
MAX_TOKEN_APPS = 1000
# A bearer value longer than this is no token of ours: refused before it is hashed.
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scope: str  # one of SCOPES
    apps: tuple[str, ...] | None  # None: every app
    expires_at: float | None  # Unix time; None: never
    secret_hash: str  # hex SHA-256 of the secret
    created_at: float = 0.0

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def covers(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scope": self.scope,
                "apps": list(self.apps) if self.apps is not None else None,
                "expires_at": self.expires_at, "created_at": self.created_at}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# What new_secret makes: URL-safe base64 without padding. Text of any other shape (a JWT, with
# its dots) is no stored token, and needs no look-up to say so.
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,512}")


def secret_shaped(text: str) -> bool:
    return _SECRET_SHAPE.fullmatch(text) is not None


def new_token(body: Mapping[str, Any], now: float | None = None) -> tuple[Token, str]:
    """A token from a POST /v1/tokens body, and its secret (to be shown once)."""
    now = time.time() if now is None else now
    unknown = sorted(set(body) - {"name", "scope", "apps", "expires_at"})
    if unknown:
        raise ValidationError(f"token.{unknown[0]}", "is not a known field")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise ValidationError("token.name", f"must be printable text of at most {MAX_TOKEN_NAME} characters")
    scope = body.get("scope")
    if scope not in SCOPES:
        raise ValidationError("token.scope", "must be 'admin', 'deploy' or 'invoke'")
    apps = body.get("apps")
    if apps is not None:
        if not isinstance(apps, list) or len(apps) > MAX_TOKEN_APPS:
            raise ValidationError("token.apps", f"must be a list of at most {MAX_TOKEN_APPS} app names, or null (every app)")
        for item in apps:
            try:
                check_app_name(item)
            except ValidationError:
                raise ValidationError("token.apps", "must hold app names (1-63 letters, digits, "
                                      "'_' or '-')") from None
        apps = tuple(sorted(set(apps)))
    expires_at = body.get("expires_at")
    if expires_at is not None:
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)) \
                or not expires_at == expires_at or expires_at > 1e11:
            raise ValidationError("token.expires_at", "must be a Unix time in seconds, or null (never)")
        if expires_at <= now:
            raise ValidationError("token.expires_at", "is in the past")
        expires_at = float(expires_at)
    secret = new_secret()
    token = Token(id="tok_" + secrets.token_hex(8), name=name, scope=scope, apps=apps,
                  expires_at=expires_at, secret_hash=hash_secret(secret), created_at=now)
    return token, secret


def token_from_record(record: Mapping[str, Any]) -> Token | None:
    """A token as the store gave it back; None (refused, and said so) if it is not one."""
    try:
        apps = record["apps"]
        if apps is not None:
            if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
                raise ValueError("apps is not a list of names")
            apps = tuple(apps)
        expires_at = record["expires_at"]
        if expires_at is not None and (isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))):
            raise ValueError("expires_at is not a number")
        token = Token(id=str(record["id"]), name=str(record["name"]), scope=record["scope"],
                      apps=apps, expires_at=expires_at, secret_hash=str(record["secret_hash"]),
                      created_at=float(record.get("created_at") or 0.0))
        if token.scope not in SCOPES:
            raise ValueError(f"scope {token.scope!r} is unknown")
        return token
    except (KeyError, TypeError, ValueError) as exc:
        log.error("stored token %s is invalid and refused: %s", str(record.get("id"))[:40], exc)
        return None
