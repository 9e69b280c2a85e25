-- wrk script of `python -m benchmarks.load` (see benchmarks/load.py and benchmarks/README.md).
--
--   wrk -t T -c C -d Ns -s benchmarks/load.lua URL -- BODIES T CYCLE [+TEXT | -TEXT]...
--
-- BODIES: a file of request bodies, one a line (JSON has no raw newlines). Thread t (0-based,
-- numbered in setup order) of T (wrk's -t, repeated) takes the lines t, t + T, t + 2T, ... in
-- order, so no two requests ever send the same body: every body is a batch of fresh pairs. When
-- a thread has sent all of its bodies it stops (`exhausted` in the summary: the file was too
-- short).
-- CYCLE: 1 to send the thread's bodies over and over instead (a read-only query).
-- +TEXT: a reply counts as a success only if its body holds TEXT; -TEXT: only if it does not.
-- Every reply must also be HTTP 200.
--
-- Each request is a POST of the body to the URL's path, Content-Type application/json. At the
-- end, done() prints ONE line: "LOAD-RESULT " and a JSON object with wrk's summary, its latency
-- percentiles (microseconds) and, per thread, the requests built (`built`: bodies consumed,
-- including the one wrk builds once to check the script), the replies, and the successes.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Thread globals, read back by done() through thread:get.
built = 0
replies = 0
ok = 0
bad_status = 0
bad_body = 0
exhausted = 0
first_error = ""
count = 0

local bodies = {}
local cycle = false
local requires = {}
local forbids = {}
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   -- args[0] is the URL (wrk passes its own argv from the URL on); the script's follow "--".
   local first = 1
   if args[first] == "--" then
      first = first + 1
   end
   local path = args[first]
   local total = tonumber(args[first + 1])
   cycle = args[first + 2] == "1"
   for i = first + 3, #args do
      local check = args[i]
      if string.sub(check, 1, 1) == "+" then
         table.insert(requires, string.sub(check, 2))
      elseif string.sub(check, 1, 1) == "-" then
         table.insert(forbids, string.sub(check, 2))
      end
   end
   local index = 0
   for line in io.lines(path) do
      if index % total == id and #line > 0 then
         table.insert(bodies, line)
      end
      index = index + 1
   end
   count = #bodies
end

function request()
   local n = built
   built = built + 1
   local body
   if cycle then
      body = bodies[(n % #bodies) + 1]
   else
      body = bodies[n + 1]
   end
   if body == nil then
      -- Out of fresh bodies: never send one twice. Stop this thread; the request returned here
      -- is a harmless probe, counted in `exhausted`.
      exhausted = exhausted + 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("POST", nil, headers, body)
end

local function note(text)
   if first_error == "" then
      first_error = string.sub(text, 1, 300)
   end
end

function response(status, headers, body)
   replies = replies + 1
   if status ~= 200 then
      bad_status = bad_status + 1
      note("HTTP " .. status .. ": " .. body)
      return
   end
   for _, text in ipairs(requires) do
      if not string.find(body, text, 1, true) then
         bad_body = bad_body + 1
         note(body)
         return
      end
   end
   for _, text in ipairs(forbids) do
      if string.find(body, text, 1, true) then
         bad_body = bad_body + 1
         note(body)
         return
      end
   end
   ok = ok + 1
end

local function quote(text)
   text = string.gsub(text, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. text .. '"'
end

function done(summary, latency, requests)
   local parts = {}
   for _, thread in ipairs(threads) do
      table.insert(parts, string.format(
         '{"id":%d,"bodies":%d,"built":%d,"replies":%d,"ok":%d,"bad_status":%d,' ..
         '"bad_body":%d,"exhausted":%d,"first_error":%s}',
         thread:get("id"), thread:get("count"), thread:get("built"), thread:get("replies"),
         thread:get("ok"), thread:get("bad_status"), thread:get("bad_body"),
         thread:get("exhausted"), quote(thread:get("first_error"))))
   end
   local e = summary.errors
   local p = { 0, 0, 0, 0, 0, 0, 0 }
   if #latency > 0 then
      p = { latency.min, latency.mean, latency.max, latency:percentile(50),
            latency:percentile(90), latency:percentile(99), latency:percentile(99.9) }
   end
   io.write(string.format(
      'LOAD-RESULT {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"threads":[%s]}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      p[1], p[2], p[3], p[4], p[5], p[6], p[7], table.concat(parts, ",")))
end
