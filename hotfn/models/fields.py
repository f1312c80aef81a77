"""The rules that fields of several records follow: the one ValidationError that names the field
that is wrong, header names and values, and config and secrets (they become environment
variables, so their names and sizes are bounded).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Mapping

log = logging.getLogger("hotfn.models")  # named as before the move: operators filter on it

# Letters, digits, '_' and '-': a key becomes an environment variable upper-cased with '-' as
# '_' (IronFunctions' rule: ``db-url`` is DB_URL), so two keys must not make the same name.
CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# A field value as it may go on the wire (RFC 9110 5.5): visible ISO-8859-1 characters, with
# spaces and tabs only inside. No CR, LF, NUL or other control character: one of those would
# split or end the header block.
HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$")


class ValidationError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def header_problem(name: Any, value: Any) -> str | None:
    """Why (name, value) cannot be sent as an HTTP response header; None when it can."""
    if not isinstance(name, str) or not HEADER_NAME.match(name):
        return f"header name {_brief(name)} is not an HTTP token"
    if not isinstance(value, str) or not HEADER_VALUE.match(value):
        if not isinstance(value, str):
            return f"header {name} must have a string value"
        for char in value:
            if char in "\r\n\0":
                return f"header {name} value holds {_CONTROL_NAMES[char]}"
            if ord(char) > 0xFF:
                return f"header {name} value holds {char!r}, outside ISO-8859-1"
            if char != "\t" and (ord(char) < 0x20 or ord(char) == 0x7F):
                return f"header {name} value holds the control character {char!r}"
        return f"header {name} value has leading or trailing white space"
    return None


_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\0": "NUL"}


def _brief(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_key(key: Any) -> str:
    """A key as part of a field name in an error: as is when short and printable."""
    if isinstance(key, str) and len(key) <= 40 and key.isprintable():
        return key
    return _brief(key, 40)


def now() -> float:
    return time.time()


# Config becomes environment variables: Linux refuses an exec whose single variable passes
# 128 KiB, and all of them share a few MiB with the request headers (cold calls), so values
# are capped well below that, one by one and together.
MAX_CONFIG_VALUE = 32 * 1024
MAX_CONFIG_TOTAL = 64 * 1024
MAX_CONFIG_KEY = 128


def env_name(key: str) -> str:
    """The environment variable a config key becomes, as IronFunctions named it."""
    return key.upper().replace("-", "_")


def header_env_name(name: str) -> str:
    """A request header's name as part of a variable name: ``x-foo.bar`` is X_FOO_BAR."""
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def config_env(config: Mapping[str, str]) -> dict[str, str]:
    """Config as environment variables; a later key wins a name (the route's over the app's)."""
    return {env_name(key): value for key, value in config.items()}


def _check_config(field_name: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field_name, "must be an object of string values")
    out = {}
    total = 0
    names: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not CONFIG_KEY.match(key) or len(key) > MAX_CONFIG_KEY:
            raise ValidationError(
                f"{field_name}.{_field_key(key)}", f"keys must be 1-{MAX_CONFIG_KEY} letters, digits, "
                "_ and - (not starting with a digit or -)"
            )
        other = names.setdefault(env_name(key), key)
        if other != key:
            raise ValidationError(f"{field_name}.{key}", f"makes the same environment variable "
                                  f"{env_name(key)} as {other}")
        if not isinstance(item, str):
            raise ValidationError(f"{field_name}.{key}", "values must be strings")
        if "\0" in item:
            raise ValidationError(f"{field_name}.{key}", "values cannot hold NUL characters")
        size = len(item.encode("utf-8", "surrogatepass"))
        if size > MAX_CONFIG_VALUE:
            raise ValidationError(f"{field_name}.{key}",
                                  f"value of {size} bytes exceeds the limit of {MAX_CONFIG_VALUE}")
        total += len(key) + size
        out[key] = item
    if total > MAX_CONFIG_TOTAL:
        raise ValidationError(field_name, f"holds {total} bytes; the limit is {MAX_CONFIG_TOTAL}")
    return out


def _check_secrets(field_name: str, value: Any) -> dict[str, str | None]:
    """Secrets follow config's rules; in a PATCH, null (or "") deletes a key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(field_name, "must be an object of string values")
    # Keys checked for all, values for those that are not a deletion.
    _check_config(field_name, {k: "" for k in value})
    checked = _check_config(field_name, {k: v for k, v in value.items() if v is not None})
    return {**checked, **{k: None for k, v in value.items() if v is None}}


def _merge(old: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """A PATCH of config, headers or secrets: keys merge; "" (or null) deletes one."""
    merged = dict(old)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def secrets_from_record(owner: str, value: Any) -> dict[str, str]:
    """Secrets as the store gave them back: anything but string values is dropped, and said so
    (by name only)."""
    if not isinstance(value, dict):
        if value:
            log.error("%s: dropped its stored secrets: not an object", owner)
        return {}
    kept = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    for name in value.keys() - kept.keys():
        log.error("%s: dropped its stored secret %s: not a string", owner, _brief(name, 40))
    return kept


def merge_config(old: Mapping[str, str], patch: Mapping[str, str | None]) -> dict[str, str]:
    """PATCH merges config (and secrets); an empty-string value (or a secret's null) deletes a
    key (as IronFunctions did). A key replaces (or deletes) any other spelling of its variable:
    ``DB_URL`` over ``db-url``, so no older value is left to come back."""
    config = dict(old)
    for key, value in patch.items():
        for same in [k for k in config if env_name(k) == env_name(key)]:
            del config[same]
        if value is not None and value != "":
            config[key] = value
    return config


# What the server sets and answers with: a client may send an object back as it read it (GET,
# change, PATCH), so these are taken and ignored rather than refused as unknown.
_READ_ONLY = frozenset({"app", "image_id", "created_at", "updated_at", "jwt_key_set"})


def _reject_unknown(what: str, body: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known - _READ_ONLY)
    if unknown:
        raise ValidationError(f"{what}.{unknown[0]}", "is not a known field")

