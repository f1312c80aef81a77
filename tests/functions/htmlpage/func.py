"""Answers every call with the web page in its app's config (PAGE), as text/html, with the
cookie in SET_COOKIE and the Clear-Site-Data in CLEAR_SITE_DATA if there are: a tenant's
function that serves a page to browsers."""

import os

from hotfn_runtime import Response


def handler(request):
    headers = {"content-type": "text/html; charset=utf-8"}
    if os.environ.get("SET_COOKIE"):
        headers["set-cookie"] = os.environ["SET_COOKIE"]
    if os.environ.get("CLEAR_SITE_DATA"):
        headers["clear-site-data"] = os.environ["CLEAR_SITE_DATA"]
    return Response(200, headers, os.environ.get("PAGE", "<p>no PAGE in the config</p>"))
