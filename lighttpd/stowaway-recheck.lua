-- stowaway-recheck.lua: lighttpd (>= 1.4.60, mod_magnet, lighty.r API) hook for the URL that
-- `server.error-handler-404` points at in the config `stowaway gen-config lighttpd` prints.
--
-- When stowaway answered "local" (X-Sendfile) but the file vanished before lighttpd opened it,
-- lighttpd runs its 404 handler, and mod_proxy then sends the *handler's* URL as the request
-- line. This script hands stowaway the client's original request target (path and query, as
-- received) and marks the request as a recheck, which stowaway never answers with "local":
-- the client gets the 302 to S3 (or the 403/404/410 the original request deserves).
--
-- Install it where the generated config expects it (default /etc/lighttpd/stowaway/).
local r = lighty.r
r.req_header["X-Original-URI"] = r.req_attr["request.orig-uri"]
r.req_header["X-Sidecar-Recheck"] = "1"
return 0
