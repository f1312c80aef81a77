"""A strict decoder of answers by IronFunctions' published API types (its docs/swagger.yml,
swagger 2.0, API version 0.1.29), written for hotfn's compatibility suite.

It decodes the way IronFunctions' generated Go client does, and fails where that client fails:
an ``integer`` must be a JSON integer in its format's range (``30.0`` is refused, as Go refuses
to put it in an int64), a ``string`` a string, an ``array`` a list, an ``object`` with
``additionalProperties`` a map of those. Properties the schema does not name are ignored (Go's
decoder drops them), so hotfn's own fields (``min_warm``, ``created_at``, ...) pass. JSON
``null`` is accepted where Go accepts it: for a property that is not required.
"""

from __future__ import annotations

from typing import Any

INT32 = (-(2 ** 31), 2 ** 31 - 1)
INT64 = (-(2 ** 63), 2 ** 63 - 1)

# The definitions section of swagger.yml, as types (descriptions left out).
DEFINITIONS: dict[str, dict[str, Any]] = {
    "Route": {"type": "object", "properties": {
        "path": {"type": "string"},
        "image": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "memory": {"type": "integer", "format": "int64"},
        "type": {"type": "string", "enum": ["sync", "async"]},
        "format": {"type": "string", "enum": ["default", "http", "json"]},
        "max_concurrency": {"type": "integer", "format": "int32"},
        "config": {"type": "object", "additionalProperties": {"type": "string"}},
        "timeout": {"type": "integer"},
        "idle_timeout": {"type": "integer"},
        "jwt_key": {"type": "string"},
    }},
    "App": {"type": "object", "properties": {
        "name": {"type": "string"},
        "config": {"type": "object", "additionalProperties": {"type": "string"}},
    }},
    "Version": {"type": "object", "properties": {"version": {"type": "string"}}},
    "RoutesWrapper": {"type": "object", "required": ["routes"], "properties": {
        "routes": {"type": "array", "items": {"$ref": "Route"}},
        "error": {"$ref": "ErrorBody"},
    }},
    "RouteWrapper": {"type": "object", "required": ["route"], "properties": {
        "message": {"type": "string"},
        "error": {"$ref": "ErrorBody"},
        "route": {"$ref": "Route"},
    }},
    "AppsWrapper": {"type": "object", "required": ["apps"], "properties": {
        "apps": {"type": "array", "items": {"$ref": "App"}},
        "error": {"$ref": "ErrorBody"},
    }},
    "AppWrapper": {"type": "object", "required": ["app"], "properties": {
        "app": {"$ref": "App"},
        "error": {"$ref": "ErrorBody"},
    }},
    "ErrorBody": {"type": "object", "properties": {
        "message": {"type": "string"},
        "fields": {"type": "string"},
    }},
    "Error": {"type": "object", "properties": {"error": {"$ref": "ErrorBody"}}},
}

# paths: (method, path template) -> {status: definition or None (no schema)}; "default" is
# any other status. Templates use the swagger's names under basePath /v1 (/version included,
# which the fn CLI asks for at the server's root).
RESPONSES: dict[tuple[str, str], dict[Any, str | None]] = {
    ("GET", "/version"): {200: "Version"},
    ("GET", "/apps"): {200: "AppsWrapper", "default": "Error"},
    ("POST", "/apps"): {200: "AppWrapper", 400: "Error", 409: "Error", "default": "Error"},
    ("DELETE", "/apps/{app}"): {200: None, 404: "Error", "default": "Error"},
    ("GET", "/apps/{app}"): {200: "AppWrapper", 404: "Error", "default": "Error"},
    ("PATCH", "/apps/{app}"): {200: "AppWrapper", 400: "Error", 404: "Error", "default": "Error"},
    ("POST", "/apps/{app}/routes"): {200: "RouteWrapper", 400: "Error", 409: "Error", "default": "Error"},
    ("GET", "/apps/{app}/routes"): {200: "RoutesWrapper", 404: "Error", "default": "Error"},
    ("PATCH", "/apps/{app}/routes/{route}"): {200: "RouteWrapper", 400: "Error", 404: "Error",
                                              "default": "Error"},
    ("GET", "/apps/{app}/routes/{route}"): {200: "RouteWrapper", 404: "Error", "default": "Error"},
    ("DELETE", "/apps/{app}/routes/{route}"): {200: None, 404: "Error", "default": "Error"},
}


class SwaggerMismatch(AssertionError):
    pass


def decode_answer(method: str, template: str, status: int, payload: Any) -> str | None:
    """Check an answer as the generated client reads it; the definition it matched."""
    answers = RESPONSES[(method, template)]
    if status in answers:
        definition = answers[status]
    elif 200 <= status < 300:
        # The generated client knows only the documented success; another 2xx (a 201) falls
        # to "default", an error type, and the CLI fails on it.
        raise SwaggerMismatch(f"{method} {template}: status {status}, the API documents "
                              f"{[s for s in answers if s != 'default']}")
    else:
        definition = answers.get("default")
    if definition is not None:
        decode(definition, payload)
    return definition


def decode(definition: str, value: Any, where: str = "$") -> Any:
    return _decode({"$ref": definition}, value, where)


def _decode(schema: dict[str, Any], value: Any, where: str) -> Any:
    if "$ref" in schema:
        schema = DEFINITIONS[schema["$ref"]]
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            raise SwaggerMismatch(f"{where}: an object was expected, not {_json_type(value)}")
        for name in schema.get("required", ()):
            if value.get(name) is None:
                raise SwaggerMismatch(f"{where}.{name}: required")
        if "additionalProperties" in schema:
            for key, item in value.items():
                _decode(schema["additionalProperties"], item, f"{where}.{key}")
        for name, prop in schema.get("properties", {}).items():
            if value.get(name) is not None:
                _decode(prop, value[name], f"{where}.{name}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise SwaggerMismatch(f"{where}: an array was expected, not {_json_type(value)}")
        for i, item in enumerate(value):
            _decode(schema["items"], item, f"{where}[{i}]")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SwaggerMismatch(f"{where}: an integer was expected, not {_json_type(value)} "
                                  f"{value!r}")
        low, high = INT32 if schema.get("format") == "int32" else INT64
        if not low <= value <= high:
            raise SwaggerMismatch(f"{where}: {value} is outside {schema.get('format', 'int64')}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise SwaggerMismatch(f"{where}: a string was expected, not {_json_type(value)}")
        # enums are documentation to the generated client (it does not validate answers);
        # they are checked by the suite where it matters, not here.
        return value
    raise AssertionError(f"unknown schema type {kind}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
