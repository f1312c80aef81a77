"""The CLI's parsing, without a server: options anywhere, no abbreviations, suggestions for
unknown options, shell completion; and the greedy route paths of the route table."""

import io
import contextlib

import pytest

from hotfn import cli, models
from hotfn.cluster import RouteTable
from hotfn.models import App, Route, ValidationError


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_server_token_and_json_are_taken_before_or_after_the_subcommand(monkeypatch):
    monkeypatch.delenv("HOTFN_SERVER", raising=False)
    parser = cli.build_parser()
    before = parser.parse_args(["--server", "http://a:1", "--token", "t1", "apps", "list"])
    after = parser.parse_args(["apps", "list", "--server", "http://b:2", "--json", "--token", "t2"])
    neither = parser.parse_args(["apps", "list"])
    assert (before.server, before.token, before.json) == ("http://a:1", "t1", False)
    assert (after.server, after.token, after.json) == ("http://b:2", "t2", True)
    assert neither.server == cli.DEFAULT_SERVER and neither.token is None


def test_server_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HOTFN_SERVER", "http://env:9")
    monkeypatch.setenv("HOTFN_TOKEN", "secret")
    args = cli.build_parser().parse_args(["routes", "list", "demo"])
    assert (args.server, args.token) == ("http://env:9", "secret")


def test_an_unknown_option_is_named_with_the_nearest_known_one():
    code, _, err = run_cli("deploy", "fn", "--aap", "demo")
    assert code == 2
    assert "hotfn deploy: unknown option --aap (did you mean --app?)" in err


def test_abbreviations_are_not_taken():
    code, _, err = run_cli("deploy", "fn", "--ap", "demo")
    assert code == 2 and "unknown option --ap" in err
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["deploy", "fn", "--app=x", "--wat"])


def test_option_values_that_look_like_options_are_not_flagged():
    assert cli.unknown_option(cli.build_parser(), ["call", "a", "/p", "-H", "--x=1"]) is None


def test_bash_completion_walks_the_subcommands_and_their_options():
    parser = cli.build_parser()
    assert cli.complete(parser, "hotfn ro", "ro") == ["routes"]
    assert cli.complete(parser, "hotfn routes ", "") == ["create", "delete", "inspect", "list", "update"]
    assert "--memory" in cli.complete(parser, "hotfn routes create demo /x --me", "--me")
    assert cli.complete(parser, "hotfn calls ", "") == ["get", "list"]
    code, out, _ = run_cli("completion", "bash")
    assert code == 0 and "complete -o default -C" in out and "__complete" in out


def test_version_names_the_client_even_without_a_server():
    code, out, err = run_cli("--server", "http://127.0.0.1:9", "version")
    assert code == 1
    import hotfn

    assert out.splitlines()[0].split() == ["client", hotfn.__version__]
    assert "cannot reach the hotfn server" in err


# -- route paths --------------------------------------------------------------------------------


def table(*paths: str) -> RouteTable:
    return RouteTable([App("a")], [Route(app="a", path=p, image=f"img{p}") for p in paths], 1)


def test_a_greedy_path_takes_every_path_under_its_prefix():
    t = table("/api/*rest")
    assert t.match("a", "/api/users/7/orders")[1] == {"rest": "users/7/orders"}
    assert t.match("a", "/api/x%20y")[1] == {"rest": "x y"}
    assert t.match("a", "/api")[1] == {"rest": ""}
    assert t.match("a", "/apis/x") is None and t.match("a", "/other") is None


def test_specific_routes_beat_greedy_ones_and_longer_prefixes_win():
    t = table("/*all", "/api/*rest", "/api/v2/*rest", "/api/health", "/api/users/:id")
    assert t.match("a", "/api/health")[0].path == "/api/health"
    assert t.match("a", "/api/users/9")[0].path == "/api/users/:id"
    assert t.match("a", "/api/users/9/x")[0].path == "/api/*rest"
    assert t.match("a", "/api/v2/things")[0].path == "/api/v2/*rest"
    assert t.match("a", "/index.html") == (t.match("a", "/index.html")[0], {"all": "index.html"})
    assert t.match("a", "/")[1] == {"all": ""}


def test_parameters_may_come_before_a_greedy_segment():
    t = table("/users/:id/*rest")
    assert t.match("a", "/users/7/files/a/b")[1] == {"id": "7", "rest": "files/a/b"}


@pytest.mark.parametrize("path,problem", [
    ("/api/*rest/more", "must be the last one"),
    ("/api/*", "'*name'"),
    ("/api/*1x", "'*name'"),
    ("/x/:rest/*rest", "appears twice"),
])
def test_bad_greedy_paths_are_refused(path, problem):
    with pytest.raises(ValidationError) as err:
        models.normalize_path(path)
    assert problem in err.value.message


def test_cold_is_another_name_for_the_one_shot_format():
    route = models.new_route("a", {"path": "/x", "image": "i", "format": "cold"})
    assert route.format == "default" and not route.is_hot
    with pytest.raises(ValidationError, match="cold"):
        models.new_route("a", {"path": "/x", "image": "i", "format": "warm"})


def test_the_token_goes_in_an_authorization_header_and_any_2xx_is_success(monkeypatch):
    import http.server
    import json
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("authorization"))
            body = json.dumps({"apps": [{"name": "x", "config": {}, "created_at": 0}]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # IronFunctions answers a create with 200, hotfn with 201
            seen.append(self.headers.get("authorization"))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        monkeypatch.setenv("HOTFN_TOKEN", "from-env")
        assert run_cli("apps", "list", "--server", url)[0] == 0
        assert run_cli("apps", "create", "y", "--server", url, "--token", "given")[0] == 0
        monkeypatch.delenv("HOTFN_TOKEN")
        assert run_cli("apps", "list", "--server", url)[0] == 0
    finally:
        httpd.shutdown()
    assert seen == ["Bearer from-env", "Bearer given", None]


def test_serve_options_are_checked_the_same_way():
    code, _, err = run_cli("serve", "--prot", "9000")
    assert code == 2 and "hotfn serve: unknown option --prot (did you mean --port?)" in err


def test_a_bad_value_in_func_json_is_named_before_anything_runs(tmp_path):
    (tmp_path / "func.py").write_text("def handler(request):\n    return 'x'\n")
    (tmp_path / "func.json").write_text('{"runtime": "python", "memory": "lots"}')
    code, _, err = run_cli("run", str(tmp_path))
    assert code == 1 and "route.memory: must be an integer" in err
    (tmp_path / "func.json").write_text('{"runtime": "python", "format": "warm"}')
    code, _, err = run_cli("run", str(tmp_path))
    assert code == 1 and "route.format: must be 'hot', 'http' or 'default'" in err


def test_bash_runs_the_completer_as_complete_dash_c_would(tmp_path):
    import shutil
    import subprocess
    import sys

    if not shutil.which("bash"):
        pytest.skip("no bash")
    # compgen -C calls the command as complete -C does: (command name, word, previous word).
    out = subprocess.run(["bash", "-c", f"compgen -C '{sys.executable} -m hotfn __complete' -- ro"],
                         capture_output=True, text=True, timeout=30, cwd=cli.__file__.rsplit("/hotfn/", 1)[0])
    assert out.stdout.split() == ["routes"], out
