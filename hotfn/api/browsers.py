"""What the API takes from web browsers, and what function answers may do in one.

A browser sends requests for any page it shows, on any site, with the credentials it holds: a
hostile page can make a visitor's browser POST to ``http://127.0.0.1:8080``, or have a name of
its own resolve to that address (DNS rebinding) and read the answers as its own. And the
server's own origin holds function answers (``/r/...``) beside the dashboard (``/ui/``). So:

- ``host_refusal``: with auth off, only Host names that no web site can have rebound are
  answered: addresses (an IP literal is what the browser's URL said, never a lookup), names
  without a dot (``localhost``, a container's or a machine's name: the hosts file or the local
  network's resolver answers for them, not a site's DNS), ``*.localhost``, ``--domain`` and its
  subdomains, ``--allowed-hosts``. With auth on a rebound page has no credential to send, so
  any Host is served.
- ``origin_refusal``: the API (everything but function calls) answers no page of another
  origin: a request with an ``Origin`` header must come from the server's own (the Host it was
  sent to, not an app's host) or one of ``--allowed-origins``. Function calls are the
  function's business: any page may call them, as any web endpoint, and a route's ``auth``
  decides who may.
- ``content_type_refusal``: the API's writes need ``Content-Type: application/json``, which a
  page of another origin can send only after a CORS preflight that the server never grants
  (an HTML form or a "simple" ``fetch`` cannot send it).
- ``sandboxed``: a function's answer on the server's origin gets
  ``Content-Security-Policy: sandbox ...``: as a page it runs in an opaque origin of its own,
  so its script reads nothing of the dashboard's and its requests carry ``Origin: null``.
  An answer on an app's own host (``--domain``) already has an origin of its own.
- The dashboard's session: a cookie (``SESSION_COOKIE``) that the page gets once for a token
  (``hotfn.api.sessions``), ``HttpOnly`` (no script reads it), ``SameSite=Strict``, sent only
  under ``/v1/``, taken for reading only (``session_credentials``), and never passed on to a
  function (``without_session``).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Iterable

from .messages import ApiRequest, ApiResponse, Headers, error_response

SESSION_COOKIE = "hotfn_session"
# Everything a page may do but be of the server's origin (no allow-same-origin, ever).
FUNCTION_SANDBOX = ("sandbox allow-scripts allow-forms allow-popups allow-modals "
                    "allow-downloads allow-popups-to-escape-sandbox")
# On every API answer: JSON and call logs are never read as a page, nor run if one is.
API_HEADERS = [("x-content-type-options", "nosniff"), ("content-security-policy", "sandbox")]
_WRITES = frozenset({"POST", "PUT", "PATCH"})


def host_name(host: str) -> str:
    """The name in a Host header, without its port, lower case, without a final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _listed(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


@functools.lru_cache(maxsize=1024)  # a server hears few names; an address costs ~4 us to parse
def _refused_name(host: str, domain: str | None, allowed_hosts: tuple[str, ...]) -> str | None:
    """The name in ``host`` if a server without auth must not answer to it; None if it may."""
    name = host_name(host)
    if ("." not in name or name.endswith(".localhost") or _is_address(name)
            or (domain and (name == domain or name.endswith("." + domain)))
            or _listed(name, allowed_hosts)):
        return None
    return name


def host_refusal(request: ApiRequest, *, auth_enabled: bool, domain: str | None,
                 allowed_hosts: tuple[str, ...]) -> ApiResponse | None:
    """403 for a Host name that a server without auth must not answer; None: it may."""
    if auth_enabled:
        return None
    host = request.header("host")
    if host is None:
        return None  # HTTP/1.0 without Host: no browser (HAProxy's health check)
    name = _refused_name(host, domain, allowed_hosts)
    if name is None:
        return None
    return error_response(
        403, f"this server has no auth and answers only to addresses, local names (localhost) "
             f"and the names it is given, not to Host {name!r}: a web page may have had its "
             f"own name resolve to this server (DNS rebinding). If the name is yours, add it to "
             f"--allowed-hosts",
        API_HEADERS)


def origin_refusal(request: ApiRequest, *, on_app_host: bool,
                   allowed_origins: tuple[str, ...]) -> ApiResponse | None:
    """403 for an API request from a page of another origin; None: it may go on."""
    origin = request.header("origin")
    if origin is None:
        return None  # not sent by a page of another origin (curl, the CLI, a same-origin read)
    origin = origin.strip().lower().rstrip("/")
    if origin in allowed_origins:
        return None
    scheme, sep, netloc = origin.partition("://")
    host = (request.header("host") or "").strip().lower()
    # Scheme aside: a proxy in front may speak TLS to the browser and plain HTTP to us.
    if sep and scheme in ("http", "https") and netloc == host and not on_app_host:
        return None
    return error_response(
        403, f"the API answers no web page of another origin than its own, and this request "
             f"came from one of {origin!r}; if that origin is yours, add it to --allowed-origins",
        API_HEADERS)


def content_type_refusal(request: ApiRequest) -> ApiResponse | None:
    """415 for an API write without ``Content-Type: application/json``; None: it may go on."""
    if request.method not in _WRITES:
        return None
    media_type = (request.header("content-type") or "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        return None
    shown = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
    return error_response(
        415, f"the API's writes take JSON: send Content-Type: application/json (this {request.method} "
             f"had {shown})", API_HEADERS)


def session_secret(headers: Headers) -> str | None:
    """The session cookie's value; None without one, or with two (one was set by someone else:
    neither is taken)."""
    found = []
    for name, value in headers:
        if name != "cookie":
            continue
        for pair in value.split(";"):
            key, _, cookie = pair.strip().partition("=")
            if key == SESSION_COOKIE and cookie:
                found.append(cookie)
    return found[0] if len(found) == 1 else None


def session_credentials(request: ApiRequest, path: str) -> Headers:
    """The headers the API's auth reads: the request's, plus the session cookie as a bearer
    token when the request has no Authorization of its own and only reads (or ends its
    session): a session lets the dashboard read, and never write, whatever happens to a page."""
    if request.header("authorization") is not None:
        return request.headers
    if request.method not in ("GET", "HEAD") and not (
            request.method == "DELETE" and path.rstrip("/") == "/v1/sessions"):
        return request.headers
    secret = session_secret(request.headers)
    if secret is None:
        return request.headers
    return [*request.headers, ("authorization", f"Bearer {secret}")]


def without_session(request: ApiRequest) -> ApiRequest:
    """``request`` without the dashboard's session cookie, for a function: browsers send it
    under ``/v1/`` only, but a session is a token of hotfn's, and no function gets one."""
    if not any(name == "cookie" and SESSION_COOKIE in value for name, value in request.headers):
        return request
    headers = []
    for name, value in request.headers:
        if name == "cookie" and SESSION_COOKIE in value:
            value = "; ".join(pair for pair in (p.strip() for p in value.split(";"))
                              if pair.partition("=")[0] != SESSION_COOKIE)
            if not value:
                continue
        headers.append((name, value))
    request.headers = headers
    return request


def sandboxed(response: ApiResponse, *, own_origin: bool) -> ApiResponse:
    """A function's answer as the browser may have it: never setting the dashboard's session
    cookie nor clearing the site's data (Clear-Site-Data acts on the whole site, which is not
    the function's), and, on the server's own origin, a page in a sandbox."""
    headers = [(k, v) for k, v in response.headers
               if not (k.lower() == "set-cookie" and _sets_session(v))
               and k.lower() != "clear-site-data"]
    if own_origin:
        headers.append(("content-security-policy", FUNCTION_SANDBOX))
    response.headers = headers
    return response


def _sets_session(set_cookie: str) -> bool:
    return set_cookie.partition("=")[0].strip().lower() == SESSION_COOKIE
