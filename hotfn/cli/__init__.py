"""The `hotfn` command: run the server, talk to a running one, or run a function locally.

    hotfn serve [--port 8080 ...]            run the server (options: hotfn serve --help)
    hotfn apps create|list|inspect|update|delete
    hotfn routes create|list|inspect|update|delete
    hotfn call APP PATH < body               invoke a route
    hotfn calls list|get APP / hotfn logs APP CALL_ID
    hotfn init --runtime python DIR          write a minimal function
    hotfn build DIR / hotfn deploy DIR --app APP [--watch] / hotfn run DIR [--port N]
    hotfn images build [RUNTIME ...]         build the runtime images on this Docker host
    hotfn version / hotfn completion bash

Every subcommand is one `cmd_*` function and one `_add_*` function that declares its
arguments (admin.py: the commands that talk to a server; deploy.py: those on a function
directory; commands.py: the rest); `build_parser` lists them in commands.COMMANDS. client.py is
the server's client and the ways a command shows what it got. `--server`, `--token` and
`--json` are accepted before or after the subcommand.

`hotfn serve` (serve.py) loads none of the client commands nor the modules they use
(hotfn.functions, hotfn.cluster.lb): they would stay in a server's memory for nothing (~0.5 MiB).

May import: it is the top: ``hotfn.server``, ``hotfn.functions``, ``hotfn.config``, ``hotfn.api``,
``hotfn.cluster``, ``hotfn.drivers``, ``hotfn.models``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from ..config import Settings

DEFAULT_SERVER = "http://127.0.0.1:8080"


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first ``kind`` inside it (trio's nurseries wrap errors in groups)."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find(inner, kind)
        if found is not None:
            return found
    return None


def complete(parser: argparse.ArgumentParser, line: str, word: str) -> list[str]:
    """The words that may follow ``line`` (bash's COMP_LINE up to the cursor), starting with
    ``word``: subcommands along the parser tree, then that subcommand's options."""
    words = line.split()[1:]
    if word and words and words[-1] == word:
        words = words[:-1]
    current = parser
    for token in words:
        sub = _subcommands(current)
        if token in sub:
            current = sub[token]
    candidates = list(_subcommands(current))
    if word.startswith("-") or not candidates:
        candidates += [o for a in current._actions for o in a.option_strings if o.startswith("--")]
    return sorted(c for c in set(candidates) if c.startswith(word))


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# -- argument parsing -------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--ap` is not silently `--app`
        super().__init__(*args, **kwargs)


def _client_options(suppress: bool) -> argparse.ArgumentParser:
    """--server, --token, --json: on the top parser with their defaults, and on every
    subcommand (defaults suppressed there, so a value given before the subcommand stays)."""
    common = Parser(add_help=False)

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    common.add_argument("--server", default=default(os.environ.get("HOTFN_SERVER", DEFAULT_SERVER)),
                        help=f"the hotfn server [env HOTFN_SERVER; default {DEFAULT_SERVER}]")
    common.add_argument("--token", default=default(os.environ.get("HOTFN_TOKEN")),
                        help="API token, sent as Authorization: Bearer [env HOTFN_TOKEN]")
    common.add_argument("--json", action="store_true", default=default(False),
                        help="print the server's JSON answer")
    return common

def build_parser(commands: list[Callable[[Any, argparse.ArgumentParser], None]] | None = None,
                 ) -> argparse.ArgumentParser:
    """The whole command line; with ``commands=[]``, `serve` alone (what a server parses)."""
    if commands is None:
        from .commands import COMMANDS as commands
    parser = Parser(prog="hotfn", description="Serverless functions in Docker, kept hot.",
                    parents=[_client_options(suppress=False)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    p = sub.add_parser("serve", help="run the server")
    Settings.add_arguments(p)
    p.set_defaults(func=None)
    common = _client_options(suppress=True)
    for add in commands:
        add(sub, common)
    return parser


def unknown_option(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """An error for the first option no parser on the way to the subcommand knows, with the
    nearest known one (argparse alone says only which required option is missing)."""
    current, known, takes_value = parser, set(), set()

    def learn(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            known.update(action.option_strings)
            if action.nargs != 0:
                takes_value.update(action.option_strings)

    learn(current)
    path = ["hotfn"]
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1 and not token[1:2].isdigit():
            name = token.split("=", 1)[0]
            if name not in known:
                import difflib  # (~0.2 MiB: only for a mistyped option)

                hint = difflib.get_close_matches(name, sorted(o for o in known if o.startswith("--")), n=1)
                return (f"{' '.join(path)}: unknown option {name}"
                        + (f" (did you mean {hint[0]}?)" if hint else ""))
            skip = name in takes_value and "=" not in token
            continue
        sub = _subcommands(current)
        if token in sub:
            current = sub[token]
            path.append(token)
            learn(current)
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A server parses its own options only (see the module's docstring).
    parser = build_parser([] if argv[:1] == ["serve"] else None)
    if argv[:1] == ["__complete"]:  # bash: complete -C 'hotfn __complete' hotfn
        line = os.environ.get("COMP_LINE", "hotfn")[: int(os.environ.get("COMP_POINT", "0") or 0) or None]
        print("\n".join(complete(parser, line, argv[2] if len(argv) > 2 else "")))
        return 0
    problem = unknown_option(parser, argv)
    if problem:
        print(f"{problem}\n({problem.split(':')[0]} --help lists them)", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command == "serve":
        from .serve import serve

        del parser  # its options and help are not needed while serving
        return serve(args)
    from .. import functions
    from .client import CliError, Client

    try:
        client = None if getattr(args, "offline", False) else Client(args.server, args.token)
        return args.func(args, client)
    except (CliError, functions.FunctionError) as exc:
        print(f"hotfn: {exc}", file=sys.stderr)
        return 1
