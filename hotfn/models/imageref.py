"""Docker image references, read as the engine reads them: the grammar of distribution/reference
(an optional registry host[:port], lower-case path components, a tag, a digest) and Docker's
normalisation (no host is ``docker.io``; one component there is under ``library/``).

A route's image is checked against the image policies by what it names, so it must name one thing
in one way: ``hotfn-fn/../other/image`` is no reference (the engine's HTTP client would have
turned it into ``other/image``), and neither is a name the engine would also look up as an image
id (``b5d851``, ``sha256:b5d851``), which could be another tenant's image by id. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .fields import ValidationError, _brief

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255  # the name (host and path) as distribution/reference caps it
# hotfn builds app X's functions as hotfn-fn/<X as a component>/<function> (hotfn.functions).
BUILT_PREFIX = "hotfn-fn/"

# The grammar, as distribution/reference's regexp.go writes it. ASCII only: Python's \w would
# take any letter, Go's takes [A-Za-z0-9_].
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_ONLY = re.compile(_DOMAIN)
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# Docker's engine verifies digests it knows (go-digest): these algorithms, lower-case hex of
# their exact length. Any other digest is refused here rather than left to the engine.
DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = r"(?P<algorithm>sha256|sha384|sha512):(?P<hex>[a-f0-9]+)"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_HEX = re.compile(r"[a-f0-9]+")
MAX_REFERENCE_LENGTH = 512


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: ``domain`` and ``path`` normalised as Docker does."""

    domain: str  # "docker.io" when none was written
    path: str  # "library/busybox", "hotfn-fn/shop/hello"
    tag: str | None = None
    digest: str | None = None  # "sha256:<hex>"

    @property
    def name(self) -> str:
        """The full name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``hotfn-fn/shop/hello``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
            return path[len(OFFICIAL_PREFIX):]
        return path

    def _suffix(self, default_tag: bool) -> str:
        tag = self.tag if self.tag is not None or self.digest is not None or not default_tag else DEFAULT_TAG
        return (f":{tag}" if tag is not None else "") + (f"@{self.digest}" if self.digest else "")

    def familiar(self, *, default_tag: bool = False) -> str:
        """``hotfn-fn/shop/hello:v2``; ``default_tag``: ``:latest`` when neither tag nor digest
        is given (what the engine runs)."""
        return self.familiar_name + self._suffix(default_tag)

    def normalized(self) -> str:
        """The full reference the engine runs: ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix(True)

    def spellings(self) -> tuple[str, ...]:
        """Every rendering a policy pattern is matched against, shortest first: the familiar
        name as written, with the default tag, and the full reference. All name one image."""
        return tuple(dict.fromkeys((self.familiar(), self.familiar(default_tag=True),
                                    self.normalized())))

    @property
    def built_for(self) -> str | None:
        """The app component of an image hotfn builds for an app (``hotfn-fn/<app>/<fn>``)."""
        if self.domain != DEFAULT_DOMAIN or not self.path.startswith(BUILT_PREFIX):
            return None
        parts = self.path.split("/")
        return parts[1] if len(parts) >= 3 else None


class InvalidImageRef(ValueError):
    pass


def parse_image_ref(text: Any) -> ImageRef:
    """``text`` as a reference; InvalidImageRef saying why if it is not one (or is ambiguous)."""
    if not isinstance(text, str) or not text:
        raise InvalidImageRef("must be a Docker image reference (a non-empty string)")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidImageRef(f"must be at most {MAX_REFERENCE_LENGTH} characters")
    match = REFERENCE.fullmatch(text)
    if match is None:
        raise InvalidImageRef(f"{_brief(text)} is not a Docker image reference: "
                              f"[host[:port]/]path[:tag][@sha256:<hex>], with path components "
                              f"of lower-case letters and digits joined by '.', '_', '__' or '-' "
                              f"(no '..', no empty or upper-case component)")
    name, tag, digest = match["name"], match["tag"], match["digest"]
    if digest is not None and len(match["hex"]) != DIGEST_LENGTHS[match["algorithm"]]:
        raise InvalidImageRef(f"digest {_brief(digest)} must have "
                              f"{DIGEST_LENGTHS[match['algorithm']]} hex digits")
    if _IDENTIFIER.fullmatch(text):
        raise InvalidImageRef("a 64-hex-digit image id is not an image name")
    if "/" not in name and digest is None and (
            (tag is None and _HEX.fullmatch(name)) or name in DIGEST_LENGTHS):
        # The engine looks a name it does not know up as an image id (or its prefix): this
        # one could run an image by its id whatever its name.
        raise InvalidImageRef(f"{_brief(text)} could also be read as an image id; name the "
                              f"image with its tag ({name}:latest)" if tag is None else
                              f"{_brief(text)} could also be read as an image id")
    domain, path = _split_domain(name)
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidImageRef(f"the repository name must be at most {NAME_TOTAL_LENGTH_MAX} characters")
    return ImageRef(domain, path, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: the first component is a registry host only if it has a '.'
    or ':' or is ``localhost`` (or, for newer engines, has an upper-case letter: refused here)."""
    first, sep, rest = name.partition("/")
    if first.lower() != first:
        # Newer engines read it as a registry host, older ones refuse it: hotfn refuses it.
        raise InvalidImageRef(f"registry host {_brief(first)} must be in lower case")
    if sep and (any(c in first for c in ".:") or first == "localhost"):
        if _DOMAIN_ONLY.fullmatch(first) is None:
            # Docker would take it for a host and then find it is none (a_b.c/x): ambiguous.
            raise InvalidImageRef(f"{_brief(first)} would be read as a registry host, and is not one")
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def check_image(value: Any, field_name: str = "route.image") -> ImageRef:
    """``value`` as a reference, or a ValidationError naming ``field_name``."""
    try:
        return parse_image_ref(value)
    except InvalidImageRef as exc:
        raise ValidationError(field_name, str(exc)) from None


def app_image_scope(app: str) -> str:
    """The component that names ``app``'s images (``hotfn-fn/<it>/<function>``): lower case,
    other characters as '-' (a repository name's component cannot hold them)."""
    return re.sub(r"[^a-z0-9]+", "-", app.lower()).strip("-") or "app"
