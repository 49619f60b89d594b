-- The baseline: POST {"id": n} to the bare DRF endpoint, n drawn from 1..rows.
-- Arguments: threads quota label rows
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local rows = 1000
local headers = {["Content-Type"] = "application/json"}

function init(args)
  bench_init_common(args)
  rows = tonumber(args[4]) or rows
  math.randomseed(1000 + tid)
end

function request()
  local mode = bench_next()
  if mode == "stop" then return "" end
  if mode == "verify" then return wrk.format("POST", "/bench/baseline/", headers, "{}") end
  local body = '{"id":' .. math.random(1, rows) .. '}'
  return wrk.format("POST", "/bench/baseline/", headers, body)
end
