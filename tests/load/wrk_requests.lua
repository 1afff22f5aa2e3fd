-- wrk script: send each request target listed in a file once, in order, then stop.
-- Arguments (after `--`): targets file (one "METHOD TARGET" per line), body file, marker file,
-- and "name: value" headers. When the last answer is in, the thread stops and the marker file
-- is created: tests/load/wrk.py then ends the run with SIGINT, so wrk's duration is the run's.
-- `done` prints one JSON line of figures.
local targets = {}
local next_index = 1
local body = ""
local marker = nil
local answered = 0
local headers = {}

function init(args)
  local f = io.open(args[2], "rb")
  body = f:read("*a")
  f:close()
  marker = args[3]
  for i = 4, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  for line in io.lines(args[1]) do
    local method, target = line:match("^(%S+) (%S+)$")
    targets[#targets + 1] = wrk.format(method, target, headers, method ~= "GET" and body or nil)
  end
  -- wrk calls request() once right after init() to check the script; that call gets index 0
  targets[0] = targets[1]
  next_index = 0
end

function request()
  local index = next_index
  next_index = next_index + 1
  if index > #targets then
    return ""  -- nothing left to send: this connection idles until the run ends
  end
  return targets[index]
end

function response(status, headers, body)
  answered = answered + 1
  if answered == #targets then
    wrk.thread:stop()
    io.open(marker, "w"):close()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
