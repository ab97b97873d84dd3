-- Requests for wrk read from a prepared file, one per line, each sent once in file order; wrk stops
-- after the given number of responses. With a rate, requests are paced open-loop (a fixed schedule
-- of intended start times) and each latency is measured from its intended start, as wrk2 does, so a
-- stalled server is charged for the requests that queued behind it (no coordinated omission).
--
--   [BENCH_RATE=req/s] wrk -t1 -c64 -d120s -s bench/wrk/requests.lua http://host:port -- FILE COUNT
--
-- A line is tab-separated: method, path, body ("" for none), then header name/value pairs.
-- Prints "STOPPED" once the count is reached, then one line "BENCH {json}" with counts, statuses and latency percentiles (microseconds).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

-- Globals, so done() can read them from each thread (thread:get copies them).
statuses = {}
paced_latencies = {}
first_sent_us, last_received_us = 0, 0

local lines = {}
local formatted = {}
local total = 0
-- The rate comes from the environment, read when wrk loads the script: wrk decides then whether
-- delay() exists, and a closed-loop run should not pay a timer per request.
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local interval = rate > 0 and 1000000 / rate or nil
local sent, received = 0, 0
-- Intended start times claimed by delay() and not yet sent, oldest first.
local due, due_head, due_tail = {}, 1, 0
local next_slot = nil

function init(args)
  local path = args[1]
  total = tonumber(args[2])
  for line in io.lines(path) do
    local fields = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = field end
    local headers = {}
    for i = 4, #fields - 1, 2 do headers[fields[i]] = fields[i + 1] end
    local body = fields[3] ~= "" and fields[3] or nil
    lines[#lines + 1] = { fields[1], fields[2], headers, body }
    formatted[#formatted + 1] = wrk.format(fields[1], fields[2], headers, body)
  end
end

local verified = false

function request()
  -- wrk calls request() once before any connection opens, to check the request parses; that call
  -- must not use up a line (or the first line would be sent twice when the file wraps).
  if not verified then
    verified = true
    return formatted[1]
  end
  sent = sent + 1
  if sent == 1 then first_sent_us = now_us() end
  local index = ((sent - 1) % #lines) + 1
  if not interval then return formatted[index] end
  -- The oldest intended start not yet sent belongs to this request: timers fire in schedule order,
  -- and when the client is behind, attributing the oldest slot is what a FIFO open-loop client does.
  local slot = due[due_head]
  if slot == nil then
    -- A connection's first request goes out without delay(): it takes the next slot of the schedule.
    local now = now_us()
    if next_slot == nil then next_slot = now end
    slot = math.max(next_slot, now)
    next_slot = next_slot + interval
  else
    due[due_head] = nil
    due_head = due_head + 1
  end
  local line = lines[index]
  local headers = {}
  for k, v in pairs(line[3]) do headers[k] = v end
  -- The server echoes X-Request-ID; it carries the intended start back to response().
  headers["X-Request-ID"] = string.format("%.0f", slot)
  return wrk.format(line[1], line[2], headers, line[4])
end

local function paced_delay()
  local now = now_us()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval
  due_tail = due_tail + 1
  due[due_tail] = slot
  local wait = (slot - now) / 1000
  if wait <= 0 then return 0 end
  return math.ceil(wait)
end
if interval then delay = paced_delay end

function response(status, headers, body)
  received = received + 1
  statuses[status] = (statuses[status] or 0) + 1
  if interval then
    local id = headers["x-request-id"] or headers["X-Request-ID"]
    if id then paced_latencies[#paced_latencies + 1] = now_us() - tonumber(id) end
  end
  if received == total then
    last_received_us = now_us()
    -- wrk's main thread sleeps for the whole -d; the caller ends that sleep (SIGINT) on this line.
    io.write("STOPPED\n")
    io.flush()
    wrk.thread:stop()
  end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.floor(p / 100 * (#sorted - 1) + 0.5) + 1
  return sorted[i]
end

function done(summary, latency, requests)
  local merged, paced = {}, {}
  local duration = 0
  for _, thread in ipairs(threads) do
    duration = math.max(duration, thread:get("last_received_us") - thread:get("first_sent_us"))
    for status, n in pairs(thread:get("statuses")) do merged[status] = (merged[status] or 0) + n end
    for _, v in ipairs(thread:get("paced_latencies")) do paced[#paced + 1] = v end
  end
  local parts = {}
  for status, n in pairs(merged) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
  local p50, p99, p999, max
  if #paced > 0 then
    table.sort(paced)
    p50, p99, p999, max = percentile(paced, 50), percentile(paced, 99), percentile(paced, 99.9), paced[#paced]
  else
    p50, p99, p999, max = latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"responses":%d,"duration_us":%d,"p50_us":%.0f,"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f,' ..
    '"paced":%s,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, duration, p50, p99, p999, max, tostring(#paced > 0),
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
