"""hotfn's layering, read from its imports: each package imports only the packages below it.

MAY_IMPORT is the one place the packages and their allowed dependencies are written down
(docs/architecture.md draws it). Every import counts: at the top of a module, inside a function
(the lazy ones) and under TYPE_CHECKING, since each is a dependency on what the other package
is. Inside one package, modules import each other freely. ``from hotfn import __version__`` is
allowed everywhere: the root module holds nothing else.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

HOTFN = pathlib.Path(__file__).resolve().parent.parent / "hotfn"

# Bottom to top. A package may import the packages its entry names, and nothing else of hotfn.
MAY_IMPORT: dict[str, set[str]] = {
    "models": set(),
    "drivers": set(),
    "ui": set(),
    "protocol": {"models"},
    "store": {"models"},
    "pool": {"protocol", "drivers", "models"},
    "access": {"store", "models"},
    "invoke": {"pool", "access", "store", "protocol", "drivers", "models"},
    "cluster": {"pool", "store", "models"},
    "observe": {"invoke", "pool", "models"},
    "async_calls": {"observe", "invoke", "store", "models"},
    "api": {"cluster", "async_calls", "observe", "invoke", "access", "pool", "store", "drivers",
            "models", "ui"},
    "http": {"api"},
    "config": {"pool", "protocol"},
    "server": {"http", "api", "config", "cluster", "observe", "invoke", "access", "pool", "store",
               "drivers"},
    "functions": {"http", "api", "invoke", "pool", "drivers", "models"},
    "cli": {"server", "functions", "config", "api", "cluster", "drivers", "models"},
    "__main__": {"cli"},
}

# Third-party libraries that only one place may speak to: errors and blocking calls are
# translated there, and nothing else depends on their types.
CONFINED: dict[str, set[str]] = {
    "msgpack": {"hotfn.protocol.frames"},
    "h11": {"hotfn.http.connection", "hotfn.protocol.httpformat"},
    "docker": {"hotfn.drivers.docker.driver", "hotfn.drivers.docker.images"},
    "psycopg": {"hotfn.store.postgres"},
    "psycopg_pool": {"hotfn.store.postgres"},
    "jwt": {"hotfn.access.auth"},
}

# Data beside the code, not modules of hotfn.
NOT_PACKAGES = {"templates", "recipes", "__pycache__"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(HOTFN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """``hotfn.pool.worker`` -> ``pool``; ``hotfn.server`` -> ``server``; ``hotfn`` -> ``hotfn``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_of(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module or name) of every import in ``source``, resolved to absolute."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from hotfn import pool` imports the package pool, not only the root module.
            found += [(node.lineno, f"{target}.{alias.name}" if target == "hotfn" else target)
                      for alias in node.names]
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What ``source`` (the text of ``module``) imports that the layering does not allow."""
    own = package_of(module)
    allowed = set() if module == "hotfn" else MAY_IMPORT.get(own)  # the root holds the version
    if allowed is None:
        return [f"{module}: package {own!r} is not in MAY_IMPORT; place it in the layering"]
    problems = []
    for line, target in imports_of(module, source, is_package):
        top = target.split(".")[0]
        if top == "hotfn":
            if target in ("hotfn", "hotfn.__version__"):
                continue
            other = package_of(target)
            if other != own and other not in allowed:
                problems.append(f"{module}:{line} imports {target}, but {own} may import "
                                f"{', '.join(sorted(allowed)) or 'nothing of hotfn'}")
        elif top in CONFINED and module not in CONFINED[top]:
            problems.append(f"{module}:{line} imports {top}, which only "
                            f"{', '.join(sorted(CONFINED[top]))} may")
    return problems


def hotfn_modules() -> list[pathlib.Path]:
    return sorted(p for p in HOTFN.rglob("*.py")
                  if not NOT_PACKAGES & set(p.relative_to(HOTFN).parts))


def test_every_import_points_down():
    problems = []
    for path in hotfn_modules():
        problems += violations(module_name(path), path.read_text(), path.name == "__init__.py")
    assert not problems, "\n".join(problems)


def test_every_package_has_a_place_in_the_layering():
    found = {p.stem if p.is_file() else p.name for p in HOTFN.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert found - {"__init__"} == set(MAY_IMPORT)


def test_the_layering_has_no_cycle():
    """Imports point only down: no package reaches itself through what it may import."""
    def below(package: str, seen: tuple[str, ...]) -> None:
        for other in MAY_IMPORT[package]:
            assert other not in seen, f"cycle: {' -> '.join(seen + (other,))}"
            below(other, seen + (other,))

    for package in MAY_IMPORT:
        below(package, (package,))


def test_each_package_says_what_it_may_import_as_the_layering_does():
    """Each package's docstring names what it may import; it must say what MAY_IMPORT says."""
    for init in sorted(HOTFN.glob("*/__init__.py")):
        package = init.parent.name
        if package in NOT_PACKAGES:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        said = re.search(r"May import:(.*?)(?:\n\n|$)", doc, re.S)
        assert said, f"hotfn/{package}/__init__.py does not say what it may import"
        named = set(re.findall(r"``hotfn\.(\w+)``", said.group(1)))
        assert named == MAY_IMPORT[package], f"hotfn/{package}: its docstring says {sorted(named)}"


def test_the_picture_in_docs_architecture_matches_the_layering():
    """docs/architecture.md draws the packages in numbered layers: every package is in it once,
    and everything a package may import is in a layer below its own."""
    text = (HOTFN.parent / "docs" / "architecture.md").read_text()
    picture = re.search(r"```text\nlayer  packages\n(.*?)```", text, re.S)
    assert picture, "docs/architecture.md has no layer picture"
    layer_of = {}
    for line in picture.group(1).splitlines():
        number, packages = line.split(None, 1)
        for package in packages.split(" · "):
            assert package.strip() not in layer_of, f"{package} drawn twice"
            layer_of[package.strip()] = int(number)
    assert set(layer_of) == set(MAY_IMPORT)
    for package, allowed in MAY_IMPORT.items():
        for other in allowed:
            assert layer_of[other] < layer_of[package], \
                f"{package} may import {other}, which the picture draws beside or above it"


@pytest.mark.parametrize("module, source", [
    ("hotfn.models.app", "from ..api import Api\n"),  # up
    ("hotfn.pool.worker", "def f():\n    from ..observe import Telemetry\n"),  # up, lazily
    ("hotfn.invoke.invoker", "from typing import TYPE_CHECKING\n"
                             "if TYPE_CHECKING:\n    from ..cluster import RouteTable\n"),  # across
    ("hotfn.store.sql", "from hotfn import pool\n"),  # up, absolute
    ("hotfn.api.routes", "import msgpack\n"),  # a confined library
])
def test_an_upward_or_sideways_import_is_refused(module, source):
    assert violations(module, source) != []


def test_imports_within_a_package_and_of_the_version_are_allowed():
    assert violations("hotfn.pool.routepool",
                      "from .worker import HotWorker\nfrom .. import __version__\n") == []
    assert violations("hotfn.api.core",
                      "from ..cluster import RouteTable\nfrom .messages import ApiError\n") == []
