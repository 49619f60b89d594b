-- Redemption: each request POSTs one distinct issued code with its own Idempotency-Key.
-- Thread t takes lines t, t+threads, ... of the codes file; when they run out it stops
-- sending and counts itself exhausted (the driver then reports the run as invalid).
-- Arguments: threads quota label codes_file api_key
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local codes = {}
local next_code = 1
local headers = {["Content-Type"] = "application/json"}

function init(args)
  bench_init_common(args)
  local line_no = 0
  for line in io.lines(args[4]) do
    if line_no % nthreads == tid then table.insert(codes, line) end
    line_no = line_no + 1
  end
  headers["Authorization"] = "Api-Key " .. args[5]
  local base = bench_can_send
  bench_can_send = function()
    if next_code > #codes then exhausted = 1; return false end
    return base()
  end
end

function request()
  local mode = bench_next()
  if mode == "stop" then return "" end
  if mode == "verify" then return wrk.format("POST", "/api/v1/redemptions/", headers, "{}") end
  local code = codes[next_code]
  next_code = next_code + 1
  headers["Idempotency-Key"] = label .. "-" .. tid .. "-" .. sent
  return wrk.format("POST", "/api/v1/redemptions/", headers, '{"code":"' .. code .. '"}')
end
