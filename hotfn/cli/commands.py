"""The client commands, one entry each in COMMANDS: each is a `cmd_*` function and an `_add_*`
function that declares its arguments. Those that talk to a server are in admin.py, those on a
function directory in deploy.py; the runtime images, shell completion and lb-config are here.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .. import functions
from . import Parser
from .admin import _add_apps, _add_call, _add_calls, _add_logs, _add_routes, _add_version
from .client import Client, CliError
from .deploy import _add_build, _add_deploy, _add_init, _add_run

def cmd_images(args: argparse.Namespace, client: Client | None) -> int:
    from ..functions import runtime_images as images

    try:
        images.build_runtime_images(args.runtimes or None, log=lambda m: print(f"[images] {m}", file=sys.stderr))
    except images.ImageBuildError as exc:
        raise CliError(str(exc)) from None
    return 0



BASH_COMPLETION = """\
# hotfn completion for bash: eval "$(hotfn completion bash)" (e.g. in ~/.bashrc)
complete -o default -C '{program} __complete' hotfn
"""


def cmd_completion(args: argparse.Namespace, client: Client | None) -> int:
    program = os.path.abspath(sys.argv[0]) if sys.argv and os.path.basename(sys.argv[0]) == "hotfn" else "hotfn"
    print(BASH_COMPLETION.format(program=program), end="")
    return 0



def _add_images(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("images", parents=[common], help="the runtime images (hotfn/<runtime>) on this Docker host")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    a = actions.add_parser("build", parents=[common], help="build them from the recipes shipped with hotfn")
    a.add_argument("runtimes", nargs="*", metavar="RUNTIME", help=f"default: all of {', '.join(functions.RUNTIMES)}")
    p.set_defaults(func=cmd_images, offline=True)



def _add_completion(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", parents=[common], help='shell completion: eval "$(hotfn completion bash)"')
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(func=cmd_completion, offline=True)


def _add_lb_config(sub: Any, common: argparse.ArgumentParser) -> None:
    from ..cluster import lb  # the cluster's load balancer configuration (hotfn/cluster/lb.py)

    lb.add_parser(sub)


# One entry per subcommand, in the order `hotfn --help` lists them.
COMMANDS = [_add_apps, _add_routes, _add_call, _add_calls, _add_logs, _add_init, _add_build,
            _add_deploy, _add_run, _add_images, _add_version, _add_completion, _add_lb_config]

