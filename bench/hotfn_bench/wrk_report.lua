-- wrk script of the hotfn bench: POSTs the body in $BENCH_BODY_FILE to the paths in
-- $BENCH_PATHS (comma-separated; several paths are visited round-robin, each thread on its
-- own), and prints one JSON line with p50/p90/p99/p99.9 (wrk's --latency has no p99.9).
local paths = {}
for p in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^,]+") do
  paths[#paths + 1] = p
end
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.path = paths[1]

if #paths > 1 then
  -- Only defined when needed: without request(), wrk sends one pre-built request (faster).
  local i = 0
  request = function()
    i = i + 1
    return wrk.format(nil, paths[(i % #paths) + 1])
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "min": %d, "max": %d, "mean": %.2f, "stdev": %.2f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.min, latency.max, latency.mean, latency.stdev))
end
