-- wrk script for bench/portal.py: sends posture reports prepared and signed in advance (the
-- devices' work), in the order they were written, and counts what the portal answered.
-- The requests file (first script argument) holds records "<length>\n<raw HTTP request>".

local requests, next_index = {}, 1
ok, other, exhausted = 0, 0, 0 -- globals: read back by done() through thread:get

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    requests[#requests + 1] = data:sub(nl + 1, nl + len)
    pos = nl + len + 1
  end
end

function request()
  local r = requests[next_index]
  if r == nil then
    -- Ran out before the run ended: resend the last one (a replay, refused with 409, so it
    -- is not counted as ingested) and say so.
    exhausted = exhausted + 1
    return requests[#requests]
  end
  next_index = next_index + 1
  return r
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total = { ok = 0, other = 0, exhausted = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(total) do
      total[k] = total[k] + t:get(k)
    end
  end
  io.write(string.format(
    '{"ok": %d, "other": %d, "exhausted": %d, "duration_us": %d, "socket_errors": %d, ' ..
    '"latency_p50_us": %d, "latency_p99_us": %d}\n',
    total.ok, total.other, total.exhausted, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
