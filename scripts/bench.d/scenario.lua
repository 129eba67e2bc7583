-- One wrk script for every HTTP scenario of scripts/bench, driven by environment variables so that
-- the proxy and the nginx baseline are loaded by exactly the same request-building code.
--
--   BENCH_METHOD     GET, PUT, POST (default GET)
--   BENCH_PATH       request path; may hold placeholders (below)
--   BENCH_BODY       request body; may hold placeholders
--   BENCH_BODY_FILE  file whose bytes are the (fixed) body, for large bodies
--   BENCH_CTYPE      Content-Type of the body (default application/json)
--   BENCH_ACCEPT     Accept header, if any
--   BENCH_TOKEN      bearer token, if any
--   BENCH_RUN        a tag that makes {n} distinct between runs
--   BENCH_RANGE      upper bound of {r} (default 1000)
--   BENCH_MOD        modulus of {m} (default 1000)
--   BENCH_LIMIT      requests per thread with fresh {n}; after that the thread repeats earlier {n}
--                    values (idempotent rewrites) and stops once every connection has moved past
--                    its last fresh request (seeding an exact number of entries)
--   BENCH_CONNS      connections per thread (needed with BENCH_LIMIT)
--   BENCH_DONE       with BENCH_LIMIT: a file prefix; a thread that has stopped creates <prefix>.<thread>
--                    (wrk itself waits out -d even when every thread has stopped: scripts/bench watches
--                    for these files and then interrupts it)
--
-- Placeholders: {n} a number unique to this run and thread ("<run>-<thread>-<counter>"),
-- {i} the plain global counter (thread * BENCH_LIMIT + counter, for seeding), {m} = {i} mod BENCH_MOD,
-- {r} a uniform random integer in 1..BENCH_RANGE.
--
-- done() prints one machine-readable line that scripts/bench parses:
--   BENCH <requests> <duration_us> <bytes> <p50_us> <p99_us> <connect> <read> <write> <status> <timeout>

local thread_counter = 0

function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("thread_id", thread_counter)
end

local method, path_t, body_t, body_templated, headers, static_req
local range, modulus, run_tag, limit, conns
local counter, responses = 0, 0

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

function init(args)
  method = env("BENCH_METHOD", "GET")
  path_t = env("BENCH_PATH", "/")
  body_t = env("BENCH_BODY", nil)
  local body_file = env("BENCH_BODY_FILE", nil)
  if body_file then
    local f = assert(io.open(body_file, "rb"))
    body_t = f:read("*a")
    f:close()
  end
  headers = {}
  if body_t then headers["Content-Type"] = env("BENCH_CTYPE", "application/json") end
  local accept = env("BENCH_ACCEPT", nil)
  if accept then headers["Accept"] = accept end
  local token = env("BENCH_TOKEN", nil)
  if token then headers["Authorization"] = "Bearer " .. token end
  range = tonumber(env("BENCH_RANGE", "1000"))
  modulus = tonumber(env("BENCH_MOD", "1000"))
  run_tag = env("BENCH_RUN", "0")
  limit = tonumber(env("BENCH_LIMIT", "0"))
  conns = tonumber(env("BENCH_CONNS", "1"))
  math.randomseed(os.time() + (thread_id or 0) * 7919)
  body_templated = body_t ~= nil and not body_file and body_t:find("{[nimr]}") ~= nil
  if not (path_t:find("{[nimr]}") or body_templated) then static_req = wrk.format(method, path_t, headers, body_t) end
  if limit > 0 then
    -- wrk only calls response() when it is defined; it is needed here to count replies.
    response = function()
      responses = responses + 1
      -- Connections are strictly request/response. Once every connection has had two replies past
      -- the last fresh request, every fresh request has been answered.
      if responses == limit + 2 * conns then
        local f = io.open(env("BENCH_DONE", "/dev/null") .. "." .. thread_id, "w")
        if f then f:close() end
        wrk.thread:stop()
      end
    end
  end
end

local function expand(t, n, i)
  return (t:gsub("{([nimr])}", function(c)
    if c == "n" then return run_tag .. "-" .. thread_id .. "-" .. n end
    if c == "i" then return tostring(i) end
    if c == "m" then return tostring(i % modulus) end
    return tostring(math.random(range))
  end))
end

function request()
  if static_req then return static_req end
  counter = counter + 1
  local n = counter
  if limit > 0 and n > limit then n = ((n - 1) % limit) + 1 end  -- rewrite an earlier entry
  local i = (thread_id - 1) * limit + n - 1
  local body = body_t
  if body_templated then body = expand(body, n, i) end
  return wrk.format(method, expand(path_t, n, i), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.bytes, latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status,
    e.timeout))
end
