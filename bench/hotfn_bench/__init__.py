"""hotfn's benchmark suite: `bench/run` (see bench/README.md).

Modules:
    runner     runs it all: processes, scenarios in order, results, cleanup on every exit
    profiles   how much of everything a full or --quick run does (every loop's bound)
    measure    the scenarios, one function each
    context    what scenarios share: routes (always deleted), calls, memory, time budget
    functions  the bench functions (bench/functions/*), their images and request payloads
    server     the hotfn and baseline server processes; /proc and cgroup readings; our containers
    baseline   the no-container servers: hotfn's HTTP front echoing from memory; raw sockets
    worker     the JSON-lines protocol between the orchestrator and its measuring processes
    client     the HTTP client process (sequential keep-alive calls, every latency kept)
    direct     containers driven without the HTTP server: frames over DockerDriver, cold steps
    wrk        the load client (wrk with a Lua report hook)
    stats      percentiles and medians
    report     results.json -> report.md;  charts: the PNGs
"""
