"""Answers every call with the web page in its app's config (PAGE), as text/html, and with the
cookie in SET_COOKIE if there is one: a tenant's function that serves a page to browsers."""

import os

from hotfn_runtime import Response


def handler(request):
    headers = {"content-type": "text/html; charset=utf-8"}
    if os.environ.get("SET_COOKIE"):
        headers["set-cookie"] = os.environ["SET_COOKIE"]
    return Response(200, headers, os.environ.get("PAGE", "<p>no PAGE in the config</p>"))
