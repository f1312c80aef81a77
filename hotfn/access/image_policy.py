"""Which images a server may run, and which of them an app may: ``--allowed-images`` and each
app's ``allowed_images``, glob patterns over image references.

An image is first read by Docker's grammar (hotfn.models.imageref): anything that is not one
reference, in one spelling, is refused, whatever the patterns. A pattern then matches the
normalised reference in any of its spellings (``busybox``, ``busybox:latest``,
``docker.io/library/busybox:latest``): each names the same image, and the engine runs no other.

Images hotfn builds for an app (``hotfn-fn/<app>/...``) are that app's: another app may run
them only if an admin lists them in its ``allowed_images``. An app without a list of its own may
run its own images and what ``--allowed-images`` allows (and is still held by the server's list).
"""

from __future__ import annotations

import fnmatch

from ..models import App, ImageRef, InvalidImageRef, app_image_scope, parse_image_ref

SETTING = "--allowed-images (HOTFN_ALLOWED_IMAGES)"
# Decisions remembered, by (image, app, its patterns): a call checks its route's image again
# (a stored value), and a regex parse plus globs cost microseconds. Bounded: cleared when full.
DECISION_CACHE_SIZE = 4096


def matches(ref: ImageRef, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(s, p) for p in patterns for s in ref.spellings())


class ImagePolicy:
    def __init__(self, patterns: str = "*") -> None:
        """``patterns``: comma-separated globs (``hotfn-fn/*,hotfn/*``); ValueError if none."""
        self.patterns = tuple(p.strip() for p in patterns.split(",") if p.strip())
        if not self.patterns:
            raise ValueError(f"{SETTING} names no pattern; '*' allows every image")
        self.allows_all = "*" in self.patterns
        self._decided: dict[tuple, str | None] = {}

    def allows(self, image: str) -> bool:
        """Whether the server may run ``image`` at all (an app may be narrower: ``refusal``)."""
        return self.refusal(image) is None

    def refusal(self, image: str, app: App | None = None) -> str | None:
        """Why ``image`` may not run (for ``app``, if given); None when it may."""
        key = (image, None) if app is None else (image, app.name, app.allowed_images)
        try:
            return self._decided[key]
        except KeyError:
            pass
        answer = self._decide(image, app)
        if len(self._decided) >= DECISION_CACHE_SIZE:
            self._decided.clear()
        self._decided[key] = answer
        return answer

    def _decide(self, image: str, app: App | None) -> str | None:
        try:
            ref = parse_image_ref(image)
        except InvalidImageRef as exc:
            return f"image {image!r}: {exc}"
        if not self.allows_all and not matches(ref, self.patterns):
            return (f"image {image!r} is not allowed on this server: {SETTING} is "
                    f"{','.join(self.patterns)!r}")
        if app is None:
            return None
        own = app_image_scope(app.name)
        listed = app.allowed_images
        owner = ref.built_for
        if owner is not None and owner != own and not (listed is not None and matches(ref, listed)):
            return (f"image {image!r} was built for another app ({owner}); app {app.name!r} may "
                    f"run it only if an admin adds it to the app's allowed_images")
        if listed is not None and not matches(ref, listed):
            return (f"image {image!r} is not allowed for app {app.name!r}: its allowed_images "
                    f"are {','.join(listed)!r}")
        return None
