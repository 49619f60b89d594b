-- Shared by the bench scripts (loaded with dofile from each of them).
--
-- Every thread counts responses by status (and by problem `code` for 4xx), stops
-- sending when its quota or its list of codes runs out, and records the wall time of
-- its first request and last response. done() prints one line "WRKJSON {...}" that
-- bench/api_bench.py parses. A thread that has finished its quota prints
-- "WRKDONE <tid>" so the driver can end wrk early (SIGINT) for fixed-count runs.
--
-- Script arguments (after `--`): threads, quota per thread (0 = no quota, run for -d),
-- run label, then script-specific ones.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock_buf = ffi.new("bench_timespec")

function bench_now()
  ffi.C.clock_gettime(1, clock_buf) -- CLOCK_MONOTONIC
  return tonumber(clock_buf.tv_sec) + tonumber(clock_buf.tv_nsec) * 1e-9
end

-- main state -------------------------------------------------------------------------

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

-- thread state -----------------------------------------------------------------------

statuses = {}
problem_codes = {}
sent = 0
received = 0
quota = 0
exhausted = 0
first_sent = 0
last_received = 0
nthreads = 1
label = "run"
local finished = false
local HOLD_MS = 3600 * 1000

function bench_init_common(args)
  nthreads = tonumber(args[1]) or 1
  quota = tonumber(args[2]) or 0
  label = args[3] or "run"
end

-- Whether this thread may send one more request (false: quota or codes used up).
bench_can_send = function() return quota == 0 or sent < quota end

function delay()
  if bench_can_send() then
    return 0
  end
  return HOLD_MS -- park the connection: nothing more is sent
end

-- Call at the top of request(). Returns "send" (counted), "stop" (quota or codes used
-- up: return "" from request(), nothing is sent) or "verify". wrk calls request() once
-- on thread 0's state before the run to check the request parses; that call is never
-- sent, so it must not be counted or use up a code: return any valid request.
-- wrk skips delay() for the first request on a new connection (also after a reconnect),
-- so the quota is enforced here as well.
local verified = false

function bench_next()
  if tid == 0 and not verified then
    verified = true
    return "verify"
  end
  if not bench_can_send() then
    return "stop"
  end
  sent = sent + 1
  if first_sent == 0 then first_sent = bench_now() end
  if quota > 0 and sent == quota then
    io.write("WRKSENT " .. tostring(tid) .. "\n")
    io.flush()
  end
  return "send"
end

function response(status, headers, body)
  received = received + 1
  last_received = bench_now()
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 400 and body then
    local code = string.match(body, '"code"%s*:%s*"([%w_]+)"')
    if code then problem_codes[code] = (problem_codes[code] or 0) + 1 end
  end
  if not finished and not bench_can_send() and received >= sent then
    finished = true
    io.write("WRKDONE " .. tostring(tid) .. "\n")
    io.flush()
  end
end

-- summary (main state) ---------------------------------------------------------------

local function json(value)
  local kind = type(value)
  if kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(k), json(v)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "number" then
    return string.format("%.6f", value)
  elseif kind == "string" then
    return string.format("%q", value)
  end
  return "null"
end

local function add_counts(into, from)
  for k, v in pairs(from or {}) do into[k] = (into[k] or 0) + v end
end

function done(summary, latency, requests)
  local out = {statuses = {}, problem_codes = {}, sent = 0, received = 0, exhausted = 0, per_thread = {}}
  local first, last = nil, nil
  for _, t in ipairs(threads) do
    add_counts(out.statuses, t:get("statuses"))
    add_counts(out.problem_codes, t:get("problem_codes"))
    out.sent = out.sent + (t:get("sent") or 0)
    out.received = out.received + (t:get("received") or 0)
    out.exhausted = out.exhausted + (t:get("exhausted") or 0)
    out.per_thread[tostring(t:get("tid"))] = {sent = t:get("sent"), received = t:get("received")}
    local f, l = t:get("first_sent") or 0, t:get("last_received") or 0
    if f > 0 and (first == nil or f < first) then first = f end
    if l > 0 and (last == nil or l > last) then last = l end
  end
  out.wall_s = (first and last) and (last - first) or 0
  out.wrk_duration_s = summary.duration / 1e6
  out.wrk_requests = summary.requests
  out.errors = {
    connect = summary.errors.connect, read = summary.errors.read, write = summary.errors.write,
    status = summary.errors.status, timeout = summary.errors.timeout,
  }
  out.latency_ms = {
    p50 = latency:percentile(50) / 1000, p90 = latency:percentile(90) / 1000,
    p99 = latency:percentile(99) / 1000, max = latency.max / 1000, mean = latency.mean / 1000,
  }
  io.write("WRKJSON " .. json(out) .. "\n")
end
