"""Text from outside (a function's stderr, a client's field) as a line of a log may carry it."""

from __future__ import annotations

import json


def log_text(text: str, *, quote_spaces: bool = False) -> str:
    """``text`` as is when it is printable (and, with ``quote_spaces``, has no space); else as
    a JSON string: quoted, with newlines, ESC and every other control character escaped. So what
    a function or a client wrote can neither forge a log line nor drive the terminal that shows
    it, and reads back exactly."""
    if text.isprintable() and not (quote_spaces and " " in text):
        return text
    return json.dumps(text)
