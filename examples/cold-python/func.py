"""The same kind of function served cold: a fresh container per request (IronFunctions' mode)."""

import os


def handler(request):
    return f"Hello from a one-shot container; {request.method} {request.path}, " \
           f"HEADER_USER_AGENT={os.environ.get('HEADER_USER_AGENT')!r}\n"
