-- stowaway-local-first.lua: stowaway's local-first hook for lighttpd >= 1.4.60 (mod_magnet, lighty.r API),
-- run by `magnet.attract-raw-url-to` in the config `stowaway gen-config lighttpd` writes.
-- Generated from the stowaway config: regenerate it when mounts change.
--
-- A GET or HEAD for a plain regular file under the root of a mount without access control is
-- sent by lighttpd itself. Anything else returns 0: mod_proxy then sends the request, unchanged,
-- to stowaway, which decides (302, X-Sendfile, 4xx). "Plain" is deliberately narrower than
-- what stowaway accepts: no ignored name (the mount's ignore globs, .stowaway-*), no control
-- character, backslash, dot or empty segment, valid UTF-8 and percent-encoding, stowaway's length
-- limits. lighty.c.stat follows symlinks, but with server.follow-symlink = "disable" lighttpd
-- refuses to send a path through one (403): that, and a file gone since the stat (404), go
-- to stowaway too.

-- First match wins, in the order of the stowaway config (as stowaway maps requests).
-- open = false: access control, stowaway decides every request.
local MOUNTS = {
  { prefix = "/static/", root = "/srv/site/static/", open = true, ignore = { "^%.stowaway%-", "^%..*$", "^.*%.tmp$", "^.*%.part$" } },
}

local MAX_PATH, MAX_KEY, MAX_SEGMENT = 4096, 1024, 255

-- Whether the target's path (as lighttpd forwards it) and the decoded key are plainly safe.
local function plain(m, key, tpath)
  if #tpath > MAX_PATH or #key > MAX_KEY then return false end
  if tpath:find('[%c "#<>\\]') then return false end
  if tpath:find("%", 1, true) then
    for pos in tpath:gmatch("()%%") do
      local hex = tpath:sub(pos + 1, pos + 2)
      if not hex:find("^%x%x$") then return false end
      hex = hex:lower()
      if hex == "2f" or hex == "5c" then return false end
    end
  end
  if key:find("[%c\\]") or key:find("\194[\128-\159]") then return false end
  if key:find("[\128-\255]") and not utf8.len(key) then return false end
  if key:sub(1, 1) == "/" or key:sub(-1) == "/" or key:find("//", 1, true) then return false end
  for seg in key:gmatch("[^/]+") do
    if seg == "." or seg == ".." or #seg > MAX_SEGMENT then return false end
    for _, p in ipairs(m.ignore) do
      if seg:find(p) then return false end
    end
  end
  return true
end

local r = lighty.r
local path = r.req_attr["uri.path"]   -- decoded and normalised by lighttpd
for _, m in ipairs(MOUNTS) do
  if #path > #m.prefix and path:sub(1, #m.prefix) == m.prefix then
    if not m.open then return 0 end
    local method = r.req_attr["request.method"]
    if method ~= "GET" and method ~= "HEAD" then return 0 end
    local key = path:sub(#m.prefix + 1)
    if not plain(m, key, r.req_attr["uri.path-raw"]) then return 0 end
    local st = lighty.c.stat(m.root .. key)
    -- Not on disk: the hot-object cache, if the mount has one (the local file always wins).
    if (not st or not st.is_file) and m.cache then st = lighty.c.stat(m.cache .. key) end
    if not st or not st.is_file then return 0 end
    local status = st["http-response-send-file"]
    -- 403: a symlink on the way (follow-symlink disabled) or unreadable; 404: gone since the
    -- stat. Neither has set a header: stowaway's answer replaces the status.
    if status == 403 or status == 404 then return 0 end
    return status
  end
end
return 0
