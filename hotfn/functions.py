"""Function directories: `hotfn init` writes one, `hotfn build` turns one into an image.

A function directory holds a handler file for its runtime and, optionally, ``func.json``
(``runtime``, ``env``, and route defaults: ``path``, ``format``, ``memory``, ``timeout``,
``max_concurrency``, ``min_warm``, ``type``). The generated Dockerfile is ``FROM hotfn/<runtime>``;
the runtime image's ONBUILD steps copy (and compile) the function (docs/runtimes.md).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys
from typing import Any

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
        return str(meta["runtime"])
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


def default_tag(directory: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", os.path.basename(os.path.abspath(directory)).lower()).strip("-.")
    return f"hotfn-fn/{name or 'function'}:latest"


def build_function(directory: str, tag: str | None = None, quiet: bool = True) -> str:
    from .drivers import DriverError
    from .drivers.docker.images import build_image

    if not os.path.isdir(directory):
        raise FunctionError(f"{directory} is not a directory")
    tag = tag or default_tag(directory)
    progress = None if quiet else (lambda line: sys.stderr.write(line))
    try:
        return build_image(directory, tag, dockerfile_for(directory), progress)
    except DriverError as exc:
        raise FunctionError(str(exc)) from None


TEMPLATES_DIR = pathlib.Path(__file__).parent / "templates"
TEMPLATES = sorted(p.name for p in TEMPLATES_DIR.iterdir() if p.is_dir())


def init_function(directory: str, runtime: str) -> list[str]:
    if runtime not in TEMPLATES:
        raise FunctionError(f"unknown runtime {runtime!r}; choose from {', '.join(TEMPLATES)}")
    sources = sorted((TEMPLATES_DIR / runtime).iterdir())
    clashes = [s.name for s in sources if os.path.exists(os.path.join(directory, s.name))]
    if clashes:
        raise FunctionError(f"{', '.join(clashes)} exist(s) in {directory} already; not overwriting")
    os.makedirs(directory, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, os.path.join(directory, source.name))
    return [s.name for s in sources]
