"""`hotfn images build`: the runtime images (hotfn/<runtime>) from the recipes shipped in this
package, on whatever Docker host the package is installed on.

The recipes are the repository's runtime-shims/ (hotfn/recipes is a link to it in a checkout,
a copy in a wheel), and the build is its one script, scripts/build-images (recipes/build-images),
so the repository and an installed hotfn build the same images the same way.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Callable


class ImageBuildError(Exception):
    pass


def recipes_dir() -> pathlib.Path:
    return pathlib.Path(__file__).resolve().parent.parent / "recipes"


def build_runtime_images(runtimes: list[str] | None, log: Callable[[str], None] = print) -> None:
    recipes = recipes_dir().resolve()
    script = recipes / "build-images"
    if not script.is_file():
        raise ImageBuildError(f"no image recipes in {recipes}: this hotfn was installed without them")
    unknown = [r for r in runtimes or [] if not (recipes / r / "Dockerfile").is_file()]
    if unknown:
        known = sorted(d.name for d in recipes.iterdir() if (d / "Dockerfile").is_file())
        raise ImageBuildError(f"unknown runtime {unknown[0]!r}; known: {', '.join(known)}")
    log(f"building {', '.join(runtimes) if runtimes else 'every runtime'} from {recipes}")
    result = subprocess.run(["bash", str(script), *(runtimes or [])],
                            env={**os.environ, "HOTFN_RECIPES": str(recipes)})
    if result.returncode != 0:
        raise ImageBuildError(f"building the runtime images failed (exit status {result.returncode}; "
                              "its output is above)")
