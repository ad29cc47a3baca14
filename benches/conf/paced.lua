-- wrk script: paced requests for latency without load (`wrk ... -s paced.lua URL -- DELAY_MS [FILE]`).
-- Every connection pauses DELAY_MS on average between its requests, so 64 connections stay far
-- below what the server can take and the latency is the path's own, not queueing. The pause is
-- drawn uniformly from 0..2 × DELAY_MS (whole ms, as wrk takes it): with a fixed pause all
-- connections would stay in step and arrive as one burst of 64 every DELAY_MS, queueing behind
-- each other. wrk starts a request's clock when it writes the request, after the pause. With
-- FILE, the request paths cycle through the paths listed in it (one per line), as paths.lua does.
-- Each wrk thread has a Lua state of its own, and an unseeded math.random gives every thread
-- the same numbers: setup() (main state, once per thread) numbers them, init() seeds with it.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local reqs = {}
local i = 0
local pause = 0

function init(args)
  math.randomseed(7919 * thread_no)
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
  return math.random(0, 2 * pause)
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
