"""The dashboard at /ui/: static files shipped in this package (no build step, no CDN), read
once and served from memory. The page is plain JavaScript that polls the JSON API (with a
session cookie, HttpOnly, that the page got once for the token a user entered; the page never
keeps the token: hotfn.api.sessions).

May import: nothing of hotfn.
"""

from __future__ import annotations

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Every asset is ours: no inline script, nothing from elsewhere, never framed.
HEADERS = [
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-cache"),
]

_assets: dict[str, tuple[str, bytes]] | None = None


def _load() -> dict[str, tuple[str, bytes]]:
    from importlib import resources  # here: a server nobody opens the dashboard of never loads it

    found = {}
    for entry in resources.files(__name__).iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (_TYPES[suffix], entry.read_bytes())
    return found


def asset(name: str) -> tuple[str, bytes] | None:
    """(content type, bytes) of the file ``name`` of the dashboard, or None. Only the files
    shipped here are ever found: a name is a key, never a path."""
    global _assets
    if _assets is None:
        _assets = _load()
    return _assets.get(name)
