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
//! * The filter ([`filter_spec`]): `log.level = "debug"` is about stowaway. The AWS SDK and the
//!   HTTP/TLS stack under it (hyper, h2, rustls, …) stay at warn unless the filter names them,
//!   e.g. `debug,aws=debug` (`aws` stands for all of them) or `debug,aws_smithy_runtime=trace`.

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

/// Crates whose debug output is the SDK's plumbing (request dumps, connection pools, TLS), not
/// stowaway's: quiet (warn) unless the filter names them.
pub const SDK_TARGETS: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_async",
    "aws_smithy_checksums",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_observability",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "aws_smithy_xml",
    "aws_types",
    "h2",
    "hyper",
    "hyper_rustls",
    "hyper_util",
    "rustls",
    "tower",
];

/// The filter alias for every crate of [`SDK_TARGETS`]: `aws=debug`.
pub const SDK_ALIAS: &str = "aws";

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// The target a directive is about (`None` for a bare level such as `debug`).
fn directive_target(d: &str) -> Option<&str> {
    let t = d.split(['[', '=']).next().unwrap_or("").trim();
    if t.is_empty() || (!d.contains('=') && LEVELS.contains(&t.to_ascii_lowercase().as_str())) {
        None
    } else {
        Some(t)
    }
}

/// Turns a `log.level` / `RUST_LOG` filter into the one given to tracing: `aws=LEVEL` expands
/// to every SDK crate at LEVEL, and every SDK crate the filter does not name gets `=warn`
/// (`=error`/`=off` when the whole filter is that quiet), so `debug` means stowaway's debug.
pub fn filter_spec(spec: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut named: Vec<String> = Vec::new();
    let mut bare: Option<String> = None;
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match directive_target(d) {
            Some(SDK_ALIAS) => {
                let rest = &d[SDK_ALIAS.len()..];
                for t in SDK_TARGETS {
                    out.push(format!("{t}{rest}"));
                    named.push((*t).to_string());
                }
            }
            Some(t) => {
                named.push(t.to_string());
                out.push(d.to_string());
            }
            None => {
                bare = Some(d.to_ascii_lowercase());
                out.push(d.to_string());
            }
        }
    }
    let quiet = match bare.as_deref() {
        Some("off") => "off",
        Some("error") => "error",
        _ => "warn",
    };
    for t in SDK_TARGETS {
        // A directive for `aws_smithy` covers `aws_smithy_runtime`: a more specific `=warn`
        // would override what the operator asked for.
        if !named.iter().any(|n| t.starts_with(n.as_str())) {
            out.push(format!("{t}={quiet}"));
        }
    }
    out.join(",")
}

/// The filter of the log output: `RUST_LOG` when set, else `level`, both through
/// [`filter_spec`]; `fallback` if neither parses (config validation makes that rare).
pub fn env_filter(level: &str, fallback: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| level.to_string());
    EnvFilter::try_new(filter_spec(&spec)).unwrap_or_else(|_| EnvFilter::new(fallback))
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
    fn filter_keeps_the_sdk_at_warn_unless_named() {
        let f = filter_spec("debug");
        assert!(f.starts_with("debug,"));
        for t in SDK_TARGETS {
            assert!(f.contains(&format!(",{t}=warn")), "{t} in {f}");
        }
        // `aws=LEVEL` opens all of them.
        let f = filter_spec("debug,aws=debug");
        assert!(f.contains("aws_smithy_runtime=debug") && f.contains("hyper=debug"));
        assert!(!f.contains("=warn"), "{f}");
        // Naming one crate (or a prefix of several) leaves the others quiet.
        let f = filter_spec("info, aws_smithy=trace");
        assert!(f.contains("aws_smithy=trace"));
        assert!(!f.contains("aws_smithy_runtime=warn"));
        assert!(f.contains("hyper=warn") && f.contains("aws_config=warn"));
        // A quieter global level is not undercut.
        assert!(filter_spec("error").contains("hyper=error"));
        assert!(filter_spec("off").contains("rustls=off"));
        // A span filter on a target counts as naming it.
        assert!(!filter_spec("debug,h2[conn]=trace").contains("h2=warn"));
        for s in [
            "debug",
            "debug,aws=debug",
            "stowaway=trace,warn",
            "aws",
            "INFO",
        ] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(filter_spec(s)).is_ok(),
                "{s}"
            );
        }
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
