-- wrk script for bench/run.sh.
--
-- Sends the Authorization header from the environment variable
-- BENCH_AUTHORIZATION (kept out of the command line), and at the end of the
-- run prints the numbers bench/run.sh needs, one "CQBENCH key value" line
-- each, including the 99.9th percentile that `wrk --latency` does not show.
-- Latencies are in microseconds.

local auth = os.getenv("BENCH_AUTHORIZATION")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

done = function(summary, latency, requests)
  local function out(k, v)
    io.write(string.format("CQBENCH %s %d\n", k, v))
  end
  out("requests", summary.requests)
  out("duration_us", summary.duration)
  out("bytes", summary.bytes)
  out("errors_connect", summary.errors.connect)
  out("errors_read", summary.errors.read)
  out("errors_write", summary.errors.write)
  out("errors_status", summary.errors.status)
  out("errors_timeout", summary.errors.timeout)
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    out(string.format("p%g_us", p), latency:percentile(p))
  end
  out("max_us", latency.max)
  out("mean_us", latency.mean)
end
