-- wrk script: cycle through the request paths listed (one per line) in the file given as the
-- first script argument (`wrk ... -s paths.lua URL -- FILE`). The requests are formatted once
-- per thread in init(), so the per-request Lua cost is an index increment.
-- Each wrk thread has a Lua state of its own, and an unseeded math.random gives every thread
-- the same numbers: setup() (main state, once per thread) numbers them, init() seeds with it.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local reqs = {}
local i = 0

function init(args)
  math.randomseed(7919 * thread_no)
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("GET", line)
    end
  end
  assert(#reqs > 0, "no paths in " .. tostring(args[1]))
  -- Threads start at different offsets.
  i = math.random(#reqs) - 1
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
