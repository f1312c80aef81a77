"""Which images a server may run: ``--allowed-images``, glob patterns over image names."""

from __future__ import annotations

import fnmatch

SETTING = "--allowed-images (HOTFN_ALLOWED_IMAGES)"


class ImagePolicy:
    def __init__(self, patterns: str = "*") -> None:
        """``patterns``: comma-separated globs (``hotfn-fn/*,hotfn/*``); ValueError if none."""
        self.patterns = tuple(p.strip() for p in patterns.split(",") if p.strip())
        if not self.patterns:
            raise ValueError(f"{SETTING} names no pattern; '*' allows every image")
        self.allows_all = "*" in self.patterns

    def allows(self, image: str) -> bool:
        # As the route names it (a tag included): "hotfn-fn/*" matches "hotfn-fn/hello:v2".
        return self.allows_all or any(fnmatch.fnmatchcase(image, p) for p in self.patterns)

    def refusal(self, image: str) -> str:
        return (f"image {image!r} is not allowed on this server: {SETTING} is "
                f"{','.join(self.patterns)!r}")
