"""Function directories: `hotfn init` writes one, `hotfn build` turns one into an image.

A function directory holds a handler file for its runtime and, optionally, ``func.json``
(``runtime``, ``env``, and route defaults: ``path``, ``format``, ``memory``, ``timeout``,
``max_concurrency``, ``min_warm``, ``type``). The generated Dockerfile is ``FROM hotfn/<runtime>``;
the runtime image's ONBUILD steps copy (and compile) the function (docs/runtimes.md).
"""

from __future__ import annotations

import difflib
import json
import os
import pathlib
import re
import shutil
from typing import Any, Callable

from ..models import app_image_scope

# The runtimes hotfn has images for (hotfn/<runtime>; `hotfn images build` makes them).
RUNTIMES = ("python", "node", "java", "clojure")

RUNTIME_FILES = [  # first match wins
    ("func.py", "python"),
    ("func.js", "node"),
    ("func.clj", "clojure"),
    ("Func.java", "java"),
]


class FunctionError(Exception):
    pass


def read_meta(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, "func.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            meta = json.load(f)
    except ValueError as exc:
        raise FunctionError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise FunctionError(f"{path} must hold a JSON object")
    return meta


def detect_runtime(directory: str) -> str:
    meta = read_meta(directory)
    if "runtime" in meta:
        runtime = meta["runtime"]
        if runtime not in RUNTIMES:
            hint = difflib.get_close_matches(str(runtime), RUNTIMES, n=1)
            raise FunctionError(
                f"{os.path.join(directory, 'func.json')}: unknown runtime {runtime!r}; known: "
                f"{', '.join(RUNTIMES)}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return runtime
    for name, runtime in RUNTIME_FILES:
        if os.path.exists(os.path.join(directory, name)):
            return runtime
    if any(n.endswith(".java") for n in os.listdir(directory)):
        return "java"
    raise FunctionError(
        f"cannot tell the runtime of {directory}: no func.py, func.js, func.clj or *.java, "
        "and no func.json with a \"runtime\""
    )


def dockerfile_for(directory: str) -> str:
    own = os.path.join(directory, "Dockerfile")
    if os.path.exists(own):
        with open(own) as f:
            return f.read()
    meta = read_meta(directory)
    runtime = detect_runtime(directory)
    lines = [f"FROM hotfn/{runtime}"]
    env = meta.get("env") or {}
    if not isinstance(env, dict):
        raise FunctionError("func.json: env must be an object")
    for key, value in env.items():
        lines.append(f"ENV {key}={json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


def _tag_component(text: str, fallback: str) -> str:
    """``text`` as one component of a Docker repository name: [a-z0-9] runs joined by . _ -"""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or fallback


def default_tag(directory: str, app: str | None = None) -> str:
    """hotfn-fn/<app>/<dir name>: the app keeps two users' `hello` functions apart on one engine."""
    name = _tag_component(os.path.basename(os.path.abspath(directory)), "function")
    # The app's component is the image policy's too: hotfn-fn/<it>/* are the app's own images.
    scope = app_image_scope(app) if app else "local"
    return f"hotfn-fn/{scope}/{name}:latest"


def build_function(directory: str, tag: str | None = None, *, app: str | None = None,
                   progress: Callable[[str], None] | None = None) -> str:
    """Build ``directory`` into an image; returns its tag. ``progress`` gets the build's output
    as it comes; a failure raises FunctionError with the output's tail."""
    from ..drivers import DriverError
    from ..drivers.docker.images import build_image

    if not os.path.isdir(directory):
        raise FunctionError(f"{directory} is not a directory")
    tag = tag or default_tag(directory, app)
    try:
        return build_image(directory, tag, dockerfile_for(directory), progress)
    except DriverError as exc:
        raise FunctionError(str(exc)) from None


def uses_hotfn_runtime(directory: str) -> bool:
    """True when the image is built FROM one of hotfn's runtimes (no Dockerfile of its own), so
    it speaks the hot protocol whatever its route's format."""
    return not os.path.exists(os.path.join(directory, "Dockerfile"))


TEMPLATES_DIR = pathlib.Path(__file__).parent.parent / "templates"
TEMPLATES = sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())


def init_function(directory: str, runtime: str) -> list[str]:
    if runtime not in TEMPLATES:
        raise FunctionError(f"unknown runtime {runtime!r}; choose from {', '.join(TEMPLATES)}")
    # Files only: an installed package may hold a template's __pycache__ (pip compiles
    # every .py it installs), which is no part of a new function.
    sources = sorted(p for p in (TEMPLATES_DIR / runtime).iterdir() if p.is_file())
    clashes = [s.name for s in sources if os.path.exists(os.path.join(directory, s.name))]
    if clashes:
        raise FunctionError(f"{', '.join(clashes)} exist(s) in {directory} already; not overwriting")
    os.makedirs(directory, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, os.path.join(directory, source.name))
    return [s.name for s in sources]
