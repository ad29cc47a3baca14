-- wrk script: paced requests for latency without load (`wrk ... -s paced.lua URL -- DELAY_MS [FILE]`).
-- Every connection waits DELAY_MS between its requests, so 64 connections stay far below what
-- the server can take and the latency is the path's own, not queueing. wrk starts a request's
-- clock when it writes the request, after the delay. With FILE, the request paths cycle through
-- the paths listed in it (one per line), as paths.lua does.
local reqs = {}
local i = 0
local pause = 0

function init(args)
  pause = tonumber(args[1])
  assert(pause and pause > 0, "paced.lua: first argument: delay in ms")
  if args[2] then
    for line in io.lines(args[2]) do
      if #line > 0 then
        reqs[#reqs + 1] = wrk.format("GET", line)
      end
    end
    assert(#reqs > 0, "no paths in " .. tostring(args[2]))
    i = math.random(#reqs) - 1
  else
    reqs[1] = wrk.format("GET")
  end
end

-- Defined at the top level: wrk only looks for delay() before init() runs.
function delay()
  return pause
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
