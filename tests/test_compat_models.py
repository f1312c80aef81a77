"""The IronFunctions-shaped fields of apps and routes, without a server: route headers in both
shapes, whole-second timeouts, config keys as IronFunctions named their variables."""

from __future__ import annotations

import pytest

from hotfn import models
from hotfn.invoke import Limits, container_spec
from hotfn.models import ValidationError


def route(**body):
    return models.new_route("app", {"path": "/x", "image": "img", **body})


def test_headers_in_either_shape_come_out_as_lists():
    r = route(headers={"X-One": "1", "X-Many": ["a", "b"], "X-None": []})
    assert r.to_json()["headers"] == {"X-One": ["1"], "X-Many": ["a", "b"]}


def test_header_patch_replaces_a_names_values_and_an_empty_value_deletes():
    r = route(headers={"X-A": ["1", "2"], "X-B": "b", "X-C": "c"})
    r = models.patch_route(r, {"headers": {"x-a": ["3"], "X-B": [], "X-C": ""}})
    assert r.to_json()["headers"] == {"x-a": ["3"]}


@pytest.mark.parametrize("headers, says", [
    ({"X-A": 7}, "a string value or a list of string values"),
    ({"X-A": ["ok", 7]}, "a string value or a list of string values"),
    ({"X-A": ["ok", "bad\r\n"]}, "holds CR"),
    ({"X A": []}, "not an HTTP token"),
    ("X-A: 1", "must be an object"),
])
def test_headers_http_cannot_carry_are_refused(headers, says):
    with pytest.raises(ValidationError, match=says):
        route(headers=headers)


def test_stored_headers_of_an_older_hotfn_read_back_as_lists():
    r = models.route_from_record({**route().to_json(), "headers": {"X-Old": "v", "X-New": ["a", "b"],
                                                                   "X-Bad": "a\rb"}})
    assert r.headers == {"X-Old": ("v",), "X-New": ("a", "b")}


def test_whole_second_timeouts_are_integers_and_fractions_stay():
    out = route(timeout=10.0, idle_timeout=20, startup_timeout=2.5).to_json()
    assert (out["timeout"], out["idle_timeout"], out["startup_timeout"]) == (10, 20, 2.5)
    assert type(out["timeout"]) is int and type(out["queue_timeout"]) is int
    assert type(route().to_json()["timeout"]) is int


def test_config_keys_become_variables_as_ironfunctions_named_them():
    r = route(format="http", config={"db-url": "u", "Mixed-case_Key": "m", "PLAIN": "p"})
    env = container_spec(r, Limits()).env
    assert (env["DB_URL"], env["MIXED_CASE_KEY"], env["PLAIN"]) == ("u", "m", "p")
    assert "db-url" not in env and env["HOTFN_FORMAT"] == "http" and env["FN_FORMAT"] == "http"
    assert "FN_FORMAT" not in container_spec(route(format="hot"), Limits()).env


def test_two_keys_that_make_one_variable_are_refused_and_a_patch_replaces_the_other_spelling():
    with pytest.raises(ValidationError, match="same environment variable DB_URL as db-url"):
        route(config={"db-url": "a", "DB_URL": "b"})
    with pytest.raises(ValidationError, match="letters, digits, _ and -"):
        route(config={"-x": "a"})
    app = models.new_app({"name": "a", "config": {"db-url": "a", "keep": "k"}})
    assert models.patch_app(app, {"config": {"DB_URL": "b"}}).config == {"keep": "k", "DB_URL": "b"}
    assert models.patch_app(app, {"config": {"DB_URL": ""}}).config == {"keep": "k"}


def test_format_http_is_hot_and_read_only_fields_sent_back_are_ignored():
    r = route(format="http", min_warm=1)
    assert r.is_hot
    shown = {k: v for k, v in r.to_json().items() if k != "secrets"}  # names only: left out
    back = models.patch_route(r, {**shown, "memory": 64, "image_id": "sha256:other"})
    assert back.memory == 64 and back.image_id == r.image_id
    with pytest.raises(ValidationError, match="'hot', 'http' or 'default'"):
        route(format="json")
