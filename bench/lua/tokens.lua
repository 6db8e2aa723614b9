-- A different token on every request: reads a file of compact JWTs, one per line, in order.
--   wrk -t1 -c64 -d8s --latency -s bench/lua/tokens.lua http://127.0.0.1:PORT/headers -- TOKEN_FILE
-- Lines are read lazily (a 200,000-token file is ~270 MB: too much to hold in a Lua table per thread).
-- At the end of the file it starts again and counts a wrap: load.py flags a run that wrapped, since a proxy
-- with a verified-token cache could then answer repeats from its cache.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   path = args[1]
   tokens = assert(io.open(path, "r"), "cannot open token file " .. tostring(path))
   wraps = 0
   sent = 0
end

function request()
   local token = tokens:read("*l")
   if not token then
      wraps = wraps + 1
      tokens:seek("set")
      token = tokens:read("*l")
   end
   sent = sent + 1
   return wrk.format("GET", wrk.path, {["Authorization"] = "Bearer " .. token})
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      io.write(string.format("token_file_wraps: %d\n", thread:get("wraps")))
      io.write(string.format("tokens_sent: %d\n", thread:get("sent")))
   end
end
