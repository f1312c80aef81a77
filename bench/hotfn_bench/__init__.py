"""hotfn's benchmark suite: `bench/run` (see bench/README.md).

Modules:
    profiles   how much of everything a full or --quick run does (every loop's bound)
    functions  the bench functions (bench/functions/*), their images and request payloads
    stats      percentiles and medians
    server     the hotfn server and the no-container baseline server, as managed processes
    client     the HTTP client process (sequential keep-alive calls, every latency kept)
    wrk        the load client (wrk with a Lua report hook)
    direct     containers driven without the HTTP server: frames over DockerDriver, cold phases
    measure    the scenarios, one function each
    report     results.json -> report.md; charts -> PNGs
    runner     runs it all, cleans up whatever happens
"""
