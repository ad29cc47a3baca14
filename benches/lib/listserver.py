#!/usr/bin/env python3
"""A listing-only S3 stand-in for the reconcile benchmark (case 11 of benches/run.sh).

  listserver.py PORT COUNT SIZE

Answers ListObjectsV2 for COUNT synthetic objects named as `bench.py mkfiles` names its files
(dNNN/fNNNNNNN.bin, in S3's key order, 1000 a page or max-keys), each with the size and the MD5
ETag of the file mkfiles writes for it, so `stowaway reconcile` over a mkfiles tree finds every
object proven equal without a HEAD. Every 100th object is listed as GLACIER. Answers
ListMultipartUploads with an empty list; anything else gets 501. No signature check: it
stands in for S3's listing, not its security (loopback only, for a benchmark).
"""

import hashlib
import random
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, __import__("os").path.dirname(__file__))
from bench import FANOUT, rel  # noqa: E402


def etags(size):
    """ETag of file i (content: i's 8 little-endian bytes, then mkfiles' random block)."""
    block = random.Random(7).randbytes(min(size, 1 << 20)) if size else b""
    if size <= 8:
        cache = {}

        def small(i):
            head = i.to_bytes(8, "little")[:size]
            if head not in cache:
                cache[head] = hashlib.md5(head).hexdigest()
            return cache[head]

        return small

    def big(i):
        h = hashlib.md5(i.to_bytes(8, "little"))
        left = size - 8
        while left > 0:
            n = min(left, len(block))
            h.update(block[:n])
            left -= n
        return h.hexdigest()

    return big


def after(key, count):
    """The index of the first object after `key` in key order, or None at the end."""
    if key is None:
        return 0 if count > 0 else None
    d, f = key.split("/")
    d, i = int(d[1:]), int(f[1:8])
    if i + FANOUT < count:
        return i + FANOUT
    d += 1
    return d if d < min(FANOUT, count) else None


def main(port, count, size):
    port, count, size = int(port), int(count), int(size)
    etag = etags(size)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, status, body):
            b = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
            if "uploads" in q:
                return self.reply(
                    200,
                    '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult>'
                    "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
                )
            if q.get("list-type") != ["2"]:
                return self.reply(501, "<Error><Code>NotImplemented</Code></Error>")
            n = min(int(q.get("max-keys", ["1000"])[0]), 1000)
            tok = q.get("continuation-token", [None])[0]
            i = after(tok, count) if tok else after(None, count)
            out = []
            last = None
            while i is not None and len(out) < n:
                k = rel(i)
                cls = "GLACIER" if i % 100 == 99 else "STANDARD"
                out.append(
                    f"<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                    f"<ETag>&quot;{etag(i)}&quot;</ETag><Size>{size}</Size>"
                    f"<StorageClass>{cls}</StorageClass></Contents>"
                )
                last = k
                i = after(k, count)
            more = i is not None
            nxt = f"<NextContinuationToken>{last}</NextContinuationToken>" if more else ""
            self.reply(
                200,
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>bench</Name><Prefix></Prefix><KeyCount>{len(out)}</KeyCount>"
                f"<MaxKeys>{n}</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                f"{nxt}{''.join(out)}</ListBucketResult>",
            )

        def do_HEAD(self):
            self.send_response(501)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
