"""Who may do what: bearer tokens and per-route auth (auth), each app's call rate (tenants),
and which images a server may run (image_policy).

May import: ``hotfn.store``, ``hotfn.models``.
"""

from .auth import Access, AuthError, Authenticator, Principal
from .tenants import RateLimiter
from .image_policy import ImagePolicy

__all__ = [
    "Access", "Authenticator", "AuthError", "ImagePolicy", "Principal", "RateLimiter",
]
