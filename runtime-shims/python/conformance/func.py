"""The conformance function (docs/runtimes.md), written with the Python shim."""

import json
import os
import sys
import time

from hotfn_runtime import Response


def _echo(request):
    headers = [("x-method", request.method), ("x-call-id", request.call_id)]
    headers += [(k, v) for k, v in request.headers if k.startswith("x-echo-")]
    return Response(200, headers, request.body)


def handler(request):
    test = request.header("x-hotfn-test", "echo")
    if test == "status":
        return Response(int(request.header("x-status")), {"x-custom": "yes"}, "status")
    if test == "raise":
        raise RuntimeError("boom")
    if test == "print":
        print("noise")
    elif test == "stderr":
        print("log line", file=sys.stderr, flush=True)
    elif test == "sleep":
        time.sleep(int(request.header("x-sleep-ms", "0")) / 1000)
    elif test == "exit":
        os._exit(3)
    elif test == "info":
        info = {
            "method": request.method, "url": request.url, "path": request.path,
            "query": request.query, "headers": request.headers, "app": request.app,
            "route": request.route, "params": request.params, "call_id": request.call_id,
            "deadline": request.deadline, "body_length": len(request.body),
            "config_value": os.environ.get("CONFORMANCE_CONFIG"),
        }
        return Response(200, {"content-type": "application/json"}, json.dumps(info))
    return _echo(request)
