//! Log output that outsiders cannot forge.
//!
//! * Text format: file names and request data reach log fields unmodified, so a file named
//!   `a\n2026-01-01T00:00:00Z ERROR ...` or holding terminal escapes could forge lines or
//!   rewrite a terminal. [`EscapingWriter`] escapes every control character of an event's line
//!   (all but the final newline) where the line is written, so no call site can forget it.
//!   JSON escapes control characters itself and is left alone.
//! * actix-http logs a malformed request (a raw backslash, a bad byte in the request line) and
//!   connection-level failures at ERROR (`stream error: ...`). They are a client's doing: the
//!   [`ClientErrors`] layer drops them at ERROR and logs them again at debug.

use std::fmt::Write as _;
use std::io;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The actix-http module whose ERROR events are about one client connection.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Escapes control characters in `line`: C0 controls and DEL as `\n`, `\r`, `\t`, `\xNN`, and
/// C1 controls (U+0080..U+009F, terminal escapes too) as `\u{NN}`; one trailing newline is kept.
pub fn escape_line(line: &[u8]) -> Vec<u8> {
    let (body, nl) = match line.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (line, false),
    };
    let mut out = Vec::with_capacity(line.len() + 8);
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                let mut s = String::new();
                let _ = write!(s, "\\x{b:02x}");
                out.extend_from_slice(s.as_bytes());
            }
            // UTF-8 of U+0080..U+009F is C2 80..C2 9F.
            0xc2 if body.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => {
                let mut s = String::new();
                let _ = write!(s, "\\u{{{:02x}}}", body[i + 1]);
                out.extend_from_slice(s.as_bytes());
                i += 1;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    if nl {
        out.push(b'\n');
    }
    out
}

/// A writer that escapes each event (tracing-subscriber's fmt layer writes one event per
/// `write_all`) before passing it to stderr.
pub struct EscapingWriter<W: io::Write>(pub W);

impl<W: io::Write> io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(&escape_line(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Makes an [`EscapingWriter`] around stderr per event.
pub fn escaping_stderr() -> EscapingWriter<io::Stderr> {
    EscapingWriter(io::stderr())
}

/// Whether an event is an actix-http per-connection error (see the module docs).
pub fn is_client_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target() == ACTIX_DISPATCHER
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Logs actix-http's per-connection ERROR events again at debug (the fmt layer filters the
/// originals out with [`is_client_error`]).
pub struct ClientErrors;

impl<S: Subscriber> Layer<S> for ClientErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !is_client_error(event.metadata()) {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        tracing::debug!(target: "stowaway::http", error = %m.0, "malformed request or broken connection (answered 400 or dropped)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_but_keeps_the_final_newline_and_utf8() {
        assert_eq!(escape_line(b"plain line\n"), b"plain line\n");
        assert_eq!(
            escape_line(b"a\nFORGED ERROR\x1b[31mred\r\t\x7f\x00 end\n"),
            b"a\\nFORGED ERROR\\x1b[31mred\\r\\t\\x7f\\x00 end\n"
        );
        assert_eq!(escape_line("€ é ü\n".as_bytes()), "€ é ü\n".as_bytes());
        // U+009B is a one-byte CSI for some terminals.
        assert_eq!(escape_line("x\u{9b}31m\n".as_bytes()), b"x\\u{9b}31m\n");
        assert_eq!(escape_line(b"two\n\n"), b"two\\n\n");
        assert_eq!(escape_line(b""), b"");
    }

    #[test]
    fn writer_escapes_every_write() {
        use std::io::Write;
        let mut w = EscapingWriter(Vec::new());
        w.write_all(b"k=a\nb\n").unwrap();
        let n = w.write(b"\x1b\n").unwrap();
        assert_eq!(n, 2);
        assert_eq!(w.0, b"k=a\\nb\n\\x1b\n");
    }
}
