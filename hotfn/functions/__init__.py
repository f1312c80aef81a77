"""Function authors' side of hotfn: a function directory (directory: ``hotfn init`` writes one,
``hotfn build`` makes its image), a function run on this machine without a server (local:
``hotfn run`` and the start-up check of ``hotfn deploy``), and the runtime images built from the
recipes this package ships (runtime_images: ``hotfn images build``).

The directory's names are offered here; local and runtime_images are imported by their own names
(local loads the whole server: the CLI imports it only for the commands that run a function).
The templates and recipes it uses are data beside it, in hotfn/templates and hotfn/recipes.

May import: anything below the command line: ``hotfn.api``, ``hotfn.http``, ``hotfn.invoke``,
``hotfn.pool``, ``hotfn.drivers``, ``hotfn.models``.
"""

from .directory import (
    RUNTIMES,
    TEMPLATES,
    FunctionError,
    build_function,
    default_tag,
    detect_runtime,
    dockerfile_for,
    init_function,
    read_meta,
    uses_hotfn_runtime,
)

__all__ = [
    "RUNTIMES", "TEMPLATES", "build_function", "default_tag", "detect_runtime", "dockerfile_for",
    "FunctionError", "init_function", "read_meta", "uses_hotfn_runtime",
]
