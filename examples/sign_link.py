#!/usr/bin/env python3
"""Mint a stowaway signed link (algorithm: docs/signed-links.md), standard library only.

    sign_link.py --kid 2026-11 --secret-file /etc/stowaway/link-key-2026-11 --ttl 3600 \\
                 [--method GET] [--ip-prefix 10.0.0.0/8] [--base-url https://www.example.com] \\
                 "/private/report 2026.pdf"

The secret comes from --secret-file (trailing newlines are ignored, as stowaway ignores them)
or from the STOWAWAY_LINK_SECRET environment variable, never from the command line. PATH is the
file's URL path, NOT percent-encoded; it must already be normalised (no empty, `.` or `..`
segments). The link is printed on stdout.

Use sign_link() from your own application code the same way.
"""

import argparse
import base64
import hashlib
import hmac
import ipaddress
import os
import sys
import time
import urllib.parse

VERSION = "stowaway-link-v1"


def sign_link(secret: bytes, kid: str, path: str, expires: int, method: str = "", ip_prefix: str = "") -> str:
    """The link (encoded path + query) for `path`, valid through Unix time `expires`."""
    if not path.startswith("/") or any(s in ("", ".", "..") for s in path[1:].split("/")):
        raise ValueError(f"path must be absolute and normalised: {path!r}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\\" for c in path):
        raise ValueError(f"path contains a control character or a backslash: {path!r}")
    if ip_prefix:
        # Canonical text of the prefix (host bits cleared); it is signed exactly as sent.
        ip_prefix = str(ipaddress.ip_network(ip_prefix, strict=False))
    fields = [VERSION, kid, str(expires), method, ip_prefix, path]
    mac = hmac.new(secret, "\n".join(fields).encode("utf-8"), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
    query = [("expires", str(expires)), ("kid", kid)]
    if method:
        query.append(("method", method))
    if ip_prefix:
        query.append(("ip", ip_prefix))
    query.append(("signature", signature))
    encoded_path = urllib.parse.quote(path, safe="/")  # RFC 3986 unreserved and "/" stay
    return encoded_path + "?" + "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in query)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", help='URL path of the file, not percent-encoded, e.g. "/private/a b.pdf"')
    p.add_argument("--kid", required=True, help="key id, as in [[mount.access.keys]]")
    p.add_argument("--secret-file", help="file holding the key's secret (else $STOWAWAY_LINK_SECRET)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--ttl", type=int, help="validity in seconds from now")
    g.add_argument("--expires", type=int, help="expiry as a Unix time in seconds")
    p.add_argument("--method", default="", help="bind to one method (a GET link also allows HEAD)")
    p.add_argument("--ip-prefix", default="", help="bind to clients in this prefix, e.g. 10.0.0.0/8")
    p.add_argument("--base-url", default="", help="printed in front of the link")
    a = p.parse_args()
    if a.secret_file:
        with open(a.secret_file, "rb") as f:
            secret = f.read().rstrip(b"\r\n")
    else:
        secret = os.environb.get(b"STOWAWAY_LINK_SECRET", b"")
    if not secret:
        print("sign_link.py: no secret (use --secret-file or STOWAWAY_LINK_SECRET)", file=sys.stderr)
        return 2
    expires = a.expires if a.expires is not None else int(time.time()) + a.ttl
    link = sign_link(secret, a.kid, a.path, expires, a.method.upper(), a.ip_prefix)
    print(a.base_url.rstrip("/") + link)
    return 0


if __name__ == "__main__":
    sys.exit(main())
