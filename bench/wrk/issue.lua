-- Issuance of one code per request (a flash sale): a unique Idempotency-Key and a
-- distinct customer reference per request, for a fixed number of requests (quota).
-- Arguments: threads quota label sku api_key
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local sku = ""
local headers = {["Content-Type"] = "application/json"}

function init(args)
  bench_init_common(args)
  sku = args[4]
  headers["Authorization"] = "Api-Key " .. args[5]
end

function request()
  local mode = bench_next()
  if mode == "stop" then return "" end
  if mode == "verify" then return wrk.format("POST", "/api/v1/issuances/", headers, "{}") end
  local id = label .. "-" .. tid .. "-" .. sent
  headers["Idempotency-Key"] = id
  local body = '{"sku":"' .. sku .. '","quantity":1,"customer":"c-' .. id .. '"}'
  return wrk.format("POST", "/api/v1/issuances/", headers, body)
end
