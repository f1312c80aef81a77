"""Apps: a tenant's name, its config and secrets, its share of the server (quotas), and the
isolation its routes run under at least."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .fields import (ValidationError, _brief, _check_config, _check_secrets, _merge,
                     _reject_unknown, merge_config, now, secrets_from_record)
from .route import ISOLATIONS, Route, check_isolation

log = logging.getLogger("hotfn.models")  # named as before the move: operators filter on it

APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


# (field, type, minimum, maximum) of an app's share of the server (docs: README, tenants)
_APP_QUOTAS = {
    "max_containers": (int, 1, 100_000),
    "max_memory_mb": (int, 16, 1 << 30),
    "rate_limit": ((int, float), 0.001, 1_000_000),
    "burst": (int, 1, 1_000_000),
    "max_routes": (int, 1, 100_000),
    "max_queued_calls": (int, 1, 10_000_000),
    "max_queued_mb": (int, 1, 1 << 20),
}
_APP_FIELDS = {"name", "config", "secrets", "isolation", "allowed_images", *_APP_QUOTAS}
# An app's allowed_images: glob patterns over image references (hotfn.access.image_policy).
MAX_IMAGE_PATTERNS = 100
MAX_IMAGE_PATTERN = 256


def _check_quota(field_name: str, value: Any, kind: Any, low: float, high: float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        noun = "an integer" if kind is int else "a number"
        raise ValidationError(field_name, f"must be {noun} from {low:g} to {high:g}, or null (no limit)")
    return value


@dataclass(frozen=True)
class App:
    name: str
    config: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    # An app's share of the server (None: no limit of its own): containers and their memory
    # at once on each node, and calls per second (a token bucket of ``burst`` per node).
    max_containers: int | None = None
    max_memory_mb: int | None = None
    rate_limit: float | None = None
    burst: int | None = None
    # Routes it may have, and async calls it may hold queued (or running) in the store, by
    # number and by their requests' size (None: the server's --max-routes, --max-queued-*).
    max_routes: int | None = None
    max_queued_calls: int | None = None
    max_queued_mb: int | None = None
    # Environment variables like config, never shown by the API (write-only: names only).
    secrets: Mapping[str, str] = field(default_factory=dict)
    # The isolation every route of the app runs under at least: "gvisor" puts the whole tenant
    # in gVisor, whatever its routes say; "container" leaves it to each route.
    isolation: str = "container"
    # Images its routes may run (glob patterns), set by an admin; None: its own images
    # (hotfn-fn/<app>/...) and what the server allows, never another app's.
    allowed_images: tuple[str, ...] | None = None

    @property
    def bucket_size(self) -> float:
        """Calls a burst may hold: ``burst``, else one second's worth (at least one)."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, float(self.rate_limit or 1))

    def route_isolation(self, route: Route) -> str:
        """The isolation ``route`` runs under: the stronger of the route's and the app's. A
        route may ask for more than its app (gVisor in a runc app), never for less: its fields
        are the tenant's to set (a deploy token), the app's isolation only an admin's."""
        return max(route.isolation, self.isolation, key=ISOLATIONS.index)

    def to_record(self) -> dict[str, Any]:
        """Every field, secrets included: what the store keeps."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = dict(self.config)
        out["secrets"] = dict(self.secrets)
        out["allowed_images"] = list(self.allowed_images) if self.allowed_images is not None else None
        return out

    def to_json(self) -> dict[str, Any]:
        """What the API shows: secrets by name only."""
        out = self.to_record()
        out["secrets"] = sorted(self.secrets)
        return out


def check_app_name(name: Any) -> str:
    if not isinstance(name, str) or not APP_NAME.match(name):
        raise ValidationError(
            "app.name", "must be 1-63 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return name


def _app_quotas(body: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _check_quota(f"app.{name}", body[name], *rule)
            for name, rule in _APP_QUOTAS.items() if name in body}


def check_image_patterns(value: Any, field_name: str = "app.allowed_images") -> tuple[str, ...] | None:
    """A list of glob patterns over image references, or None (the default)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_IMAGE_PATTERNS:
        raise ValidationError(field_name, f"must be a list of at most {MAX_IMAGE_PATTERNS} glob "
                              "patterns of image names, or null (the app's own images and what "
                              "the server allows)")
    for pattern in value:
        if (not isinstance(pattern, str) or not 1 <= len(pattern) <= MAX_IMAGE_PATTERN
                or not pattern.isprintable() or any(c.isspace() or c == "," for c in pattern)):
            raise ValidationError(field_name, f"pattern {_brief(pattern)} must be 1-"
                                  f"{MAX_IMAGE_PATTERN} printable characters without spaces or commas")
    return tuple(dict.fromkeys(value))


def _app_policy(body: Mapping[str, Any]) -> dict[str, Any]:
    if "allowed_images" not in body:
        return {}
    return {"allowed_images": check_image_patterns(body["allowed_images"])}


def new_app(body: Mapping[str, Any]) -> App:
    name = check_app_name(body.get("name"))
    _reject_unknown("app", body, _APP_FIELDS)
    t = now()
    secrets = _merge({}, _check_secrets("app.secrets", body.get("secrets")))
    isolation = check_isolation(body.get("isolation", "container"), "app.isolation")
    return App(name=name, config=_check_config("app.config", body.get("config")), created_at=t,
               updated_at=t, secrets=secrets, isolation=isolation, **_app_quotas(body),
               **_app_policy(body))


def patch_app(app: App, body: Mapping[str, Any]) -> App:
    _reject_unknown("app", body, _APP_FIELDS)
    if "name" in body and body["name"] != app.name:
        raise ValidationError("app.name", "cannot be changed")
    config = merge_config(app.config, _check_config("app.config", body.get("config")))
    secrets = merge_config(app.secrets, _check_secrets("app.secrets", body.get("secrets")))
    isolation = check_isolation(body.get("isolation", app.isolation), "app.isolation")
    return dataclasses.replace(app, config=config, secrets=secrets, isolation=isolation,
                               updated_at=now(), **_app_quotas(body), **_app_policy(body))


def app_from_record(record: Mapping[str, Any]) -> App:
    """An app as the store gave it back: a quota out of range is dropped (no limit), and said so."""
    fields = dict(record)
    for name, rule in _APP_QUOTAS.items():
        try:
            fields[name] = _check_quota(name, fields.get(name), *rule)
        except ValidationError as exc:
            log.error("app %s: dropped its stored %s: %s", fields.get("name"), name, exc.message)
            fields[name] = None
    fields["secrets"] = secrets_from_record(f"app {fields.get('name')}", fields.get("secrets"))
    config = fields.get("config")
    fields["config"] = config if isinstance(config, dict) else {}
    try:
        fields["isolation"] = check_isolation(fields.get("isolation", "container"), "app.isolation")
    except ValidationError as exc:
        # Fail closed: an app put in gVisor must not leave it through a damaged record.
        log.error("app %s: stored isolation: %s; using 'gvisor'", fields.get("name"), exc.message)
        fields["isolation"] = "gvisor"
    try:
        fields["allowed_images"] = check_image_patterns(fields.get("allowed_images"))
    except ValidationError as exc:
        # Fail closed: an app whose stored list cannot be read may run no image.
        log.error("app %s: its stored allowed_images are invalid (%s); it may run no image",
                  fields.get("name"), exc.message)
        fields["allowed_images"] = ()
    return App(**fields)

