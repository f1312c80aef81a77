"""Which route serves a path, on this node: the route table, kept up to date change by change.

Every app or route change in the store has a number (``Store.routes_version``) and a row in the
store's change feed. ``RouteSync`` reads the changes after the table's version and, for each app
or route one touches, reads that one record again and updates the table and that route's pool:
a change costs the same with 10 routes or 10,000. When the feed cannot say what changed (too
far behind, or a store written by an older hotfn) it reloads everything, as every change once
did.

The table is changed in place between awaits, so a request matched against it sees either
the old or the new state of a route, never half of one.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import replace
from typing import Callable

import trio

from .. import models
from ..models import App, Route
from ..pool import PoolManager
from ..store import Change, NotFound, Store

RouteKey = tuple[str, str]  # (app, route path)


class RouteTable:
    """Every app and route this node serves, for matching without touching the store.

    Precedence, most specific first: an exact path (/users/me); then paths with parameters
    of the same length (/users/:id), those with more literal segments first; then greedy
    paths (/api/*rest), the one with the most segments before its '*' first. A greedy path
    also matches its prefix alone (/api, with rest '')."""

    def __init__(self, apps: list[App], routes: list[Route], version: int) -> None:
        self.version = version
        self.apps: dict[str, App] = {}
        self._raw: dict[str, dict[str, Route]] = {}  # app -> path -> route as stored
        self._merged: dict[RouteKey, Route] = {}  # servable: its app exists, config merged
        self._patterns: dict[str, list[tuple[list[str], Route]]] = {}
        self._greedy: dict[str, list[tuple[list[str], str, Route]]] = {}  # prefix, param, route
        for app in apps:
            self.apps[app.name] = app
        for route in routes:
            self._raw.setdefault(route.app, {})[route.path] = route
        for name in {*self.apps, *self._raw}:
            self._rebuild_app(name)

    # -- changes --

    def put_app(self, app: App) -> list[RouteKey]:
        """Add or update ``app``; the keys of its routes (their config may have changed)."""
        self.apps[app.name] = app
        return self._rebuild_app(app.name)

    def remove_app(self, name: str) -> list[RouteKey]:
        """``name`` and its routes are gone; the keys of the routes that were served."""
        paths = list(self._raw.pop(name, {}))
        self.apps.pop(name, None)
        gone = [(name, path) for path in paths if (name, path) in self._merged]
        for key in gone:
            del self._merged[key]
        self._patterns.pop(name, None)
        self._greedy.pop(name, None)
        return gone

    def set_routes(self, app: str, routes: list[Route]) -> None:
        """``app``'s routes are ``routes`` (served once the app is put)."""
        self._raw[app] = {route.path: route for route in routes}

    def put_route(self, route: Route) -> None:
        self._raw.setdefault(route.app, {})[route.path] = route
        self._place(route.app, route.path)

    def remove_route(self, app: str, path: str) -> None:
        self._raw.get(app, {}).pop(path, None)
        self._place(app, path)

    def _rebuild_app(self, name: str) -> list[RouteKey]:
        paths = list(self._raw.get(name, {}))
        self._patterns.pop(name, None)
        self._greedy.pop(name, None)
        for path in paths:
            self._merged.pop((name, path), None)
            self._place(name, path, sort=False)
        self._sort_patterns(name)
        return [(name, path) for path in paths]

    def _place(self, app_name: str, path: str, sort: bool = True) -> None:
        """Make (app, path) servable as its raw route and app say, or not at all."""
        key = (app_name, path)
        patterns = self._patterns.get(app_name)
        if ":" in path and patterns is not None:
            patterns[:] = [p for p in patterns if p[1].path != path]
        greedy = self._greedy.get(app_name)
        if "*" in path and greedy is not None:
            greedy[:] = [g for g in greedy if g[2].path != path]
        self._merged.pop(key, None)
        app = self.apps.get(app_name)
        route = self._raw.get(app_name, {}).get(path)
        if app is None or route is None:
            return
        # The container sees the app's config overlaid by the route's; secrets likewise. It runs
        # under the stronger of the two isolations.
        route = replace(route, config={**app.config, **route.config},
                        secrets={**app.secrets, **route.secrets},
                        isolation=app.route_isolation(route))
        self._merged[key] = route
        segments = route.path.strip("/").split("/")
        if models.GREEDY_SEGMENT.match(segments[-1]):
            self._greedy.setdefault(app_name, []).append((segments[:-1], segments[-1][1:], route))
            if sort:
                self._sort_patterns(app_name)
        elif ":" in path:
            self._patterns.setdefault(app_name, []).append((route.path.strip("/").split("/"), route))
            if sort:
                self._sort_patterns(app_name)

    def _sort_patterns(self, app: str) -> None:
        # Most literal segments first: /users/me beats /users/:id.
        patterns = self._patterns.get(app)
        if patterns:
            patterns.sort(key=lambda p: (-sum(not s.startswith(":") for s in p[0]), -len(p[0])))
        greedy = self._greedy.get(app)
        if greedy:
            # The longest prefix first: /api/v2/*rest beats /api/*rest.
            greedy.sort(key=lambda g: (-len(g[0]), -sum(not s.startswith(":") for s in g[0])))

    # -- lookups --

    def get(self, app: str, path: str) -> Route | None:
        """The route whose path (pattern) is ``path``, config merged."""
        return self._merged.get((app, path))

    def all_routes(self) -> list[Route]:
        return list(self._merged.values())

    def keys(self) -> set[RouteKey]:
        return set(self._merged)

    def match(self, app: str, path: str) -> tuple[Route, dict[str, str]] | None:
        path = path.rstrip("/") or "/"
        route = self._merged.get((app, path))
        if route is not None and ":" not in route.path and "*" not in route.path:
            return route, {}
        parts = path.strip("/").split("/") if path != "/" else []
        for segments, route in self._patterns.get(app, ()):
            if len(segments) == len(parts):
                params = _match_segments(segments, parts)
                if params is not None:
                    return route, params
        for prefix, name, route in self._greedy.get(app, ()):
            if len(parts) < len(prefix):
                continue
            params = _match_segments(prefix, parts[: len(prefix)])
            if params is not None:
                params[name] = urllib.parse.unquote("/".join(parts[len(prefix):]))
                return route, params
        return None


def _match_segments(segments: list[str], parts: list[str]) -> dict[str, str] | None:
    params = {}
    for seg, part in zip(segments, parts):
        if seg.startswith(":"):
            if not part:
                return None
            params[seg[1:]] = urllib.parse.unquote(part)
        elif seg != part:
            return None
    return params


class RouteSync:
    """Brings ``table`` (and the pools) up to the store's routes_version. A hot route gets a
    pool if ``servable`` allows it (the image policy); ``on_apps_changed`` hears of every app
    change with all the apps (their own limits)."""

    def __init__(self, store: Store, pools: PoolManager, *,
                 servable: Callable[[Route], bool] = lambda route: True,
                 on_apps_changed: Callable[[dict[str, App]], None] = lambda apps: None,
                 on_routes_changed: Callable[[set[RouteKey]], None] = lambda keys: None) -> None:
        self.store = store
        self.pools = pools
        self.servable = servable
        self.on_apps_changed = on_apps_changed
        self.on_routes_changed = on_routes_changed  # hears the keys served after each change
        self.table = RouteTable([], [], -1)
        self.full_reloads = 0
        self._lock = trio.Lock()
        self._reads_begun = 0

    async def refresh(self) -> None:
        asked = self._reads_begun
        async with self._lock:
            # A read that began after we were asked has ended: it saw every change we could.
            # (A flood of requests for an app or route that is not there, each a miss that asks
            # for a refresh, so costs one read of the store at a time, not one each.)
            if self._reads_begun > asked:
                return
            self._reads_begun += 1
            feed = await self.store.changes_since(self.table.version)
            if feed.latest == self.table.version:
                return
            if not feed.complete or self.table.version < 0:
                await self._reload_all()
                return
            # Each app or route once, as it is now: in the order of its last change, so that
            # an app comes after the routes created before it was changed.
            last: dict[tuple[str, str | None], Change] = {}
            for change in feed.changes:
                last.pop((change.app, change.path), None)
                last[(change.app, change.path)] = change
            for app, path in last:
                if path is None:
                    await self._apply_app(app)
                else:
                    await self._apply_route(app, path)
            self.table.version = feed.latest
            if any(path is None for _, path in last):
                self.on_apps_changed(self.table.apps)
            self.on_routes_changed(self.table.keys())

    async def _apply_app(self, name: str) -> None:
        try:
            app = await self.store.get_app(name)
        except NotFound:
            for key in self.table.remove_app(name):
                self.pools.route_removed(*key)
            return
        known = self.table.apps.get(name)
        if known is None or known.created_at != app.created_at:
            # New, or deleted and created again meanwhile: the routes this table holds for
            # it may be gone with the old one (a cascade delete names no route).
            for key in self.table.remove_app(name):
                self.pools.route_removed(*key)
            self.table.set_routes(name, await self.store.list_routes(name))
        for key in self.table.put_app(app):
            self._sync_pool(key)

    async def _apply_route(self, app: str, path: str) -> None:
        try:
            self.table.put_route(await self.store.get_route(app, path))
        except NotFound:
            self.table.remove_route(app, path)
        self._sync_pool((app, path))

    def _sync_pool(self, key: RouteKey) -> None:
        route = self.table.get(*key)
        if route is not None and route.is_hot and self.servable(route):
            self.pools.route_changed(route)
        else:
            self.pools.route_removed(*key)

    async def _reload_all(self) -> None:
        version = await self.store.routes_version()
        apps = await self.store.list_apps()
        routes = await self.store.list_routes()
        old, self.table = self.table, RouteTable(apps, routes, version)
        self.full_reloads += 1
        new_keys = {(r.app, r.path) for r in self.table.all_routes()}
        for key in {(r.app, r.path) for r in old.all_routes()} - new_keys:
            self.pools.route_removed(*key)
        for key in new_keys:
            self._sync_pool(key)
        self.on_apps_changed(self.table.apps)
        self.on_routes_changed(new_keys)
