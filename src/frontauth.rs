//! Who may talk to the decision endpoints, and whose word counts for the client address.
//!
//! Loopback is not a trust boundary: every local process (and, with a remote front, every host
//! that reaches the listener) can send `X-Real-IP` / `X-Forwarded-For`. A request is *from the
//! front server* when it arrived
//! * on the Unix socket of `server.listen = "unix:/path"` (its permissions admit only the front
//!   server's user or group), or
//! * with the shared secret of `server.front_secret_file` in [`FRONT_HEADER`], or
//! * from an address in `server.trusted_proxies`.
//!
//! Only then are the forwarded-address headers honoured; otherwise the socket peer is the
//! client. With a front secret configured, a request without it is refused outright.
//!
//! This module is the per-request check; the settings it runs on ([`FrontAuthSettings`],
//! [`Listen`]) and their validation live in [`crate::config`].

use std::fmt;
use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::{FrontAuthSettings, Listen};
use crate::ipprefix::IpPrefix;

/// The header the generated front configs put the shared secret in.
pub const FRONT_HEADER: HeaderName = HeaderName::from_static("x-stowaway-front");
/// Its spelling in front-server configs.
pub const FRONT_HEADER_NAME: &str = "X-Stowaway-Front";

type HmacSha256 = Hmac<Sha256>;

/// How far a request is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Front authentication is required and missing: refuse.
    Refused,
    /// Not from the front: the socket peer is the client.
    Direct,
    /// From the front server: its forwarded-address headers count.
    Front,
}

/// The per-request check, built once at start-up.
pub struct FrontAuth {
    unix: bool,
    /// A front secret is configured: requests without it are refused.
    required: bool,
    /// A keyed HMAC and the secret's tag under it: comparing tags of equal length in constant
    /// time hides both the secret's bytes and its length. `None` with `required` refuses all.
    check: Option<(HmacSha256, Vec<u8>)>,
    trusted: Vec<IpPrefix>,
}

impl fmt::Debug for FrontAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontAuth")
            .field("unix", &self.unix)
            .field("secret", &self.required.then_some("<redacted>"))
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl FrontAuth {
    pub fn new(listen: &Listen, a: &FrontAuthSettings) -> Self {
        // The HMAC key only makes the tag fixed-length; it is not a secret.
        let check = a.front_secret.as_ref().and_then(|s| {
            let base = HmacSha256::new_from_slice(b"stowaway front secret").ok()?;
            let mut m = base.clone();
            m.update(s.expose().as_bytes());
            Some((base, m.finalize().into_bytes().to_vec()))
        });
        FrontAuth {
            unix: matches!(listen, Listen::Unix(_)),
            required: a.front_secret.is_some(),
            check,
            trusted: a.trusted_proxies.clone(),
        }
    }

    /// Whether every request must carry the secret.
    pub fn requires_secret(&self) -> bool {
        self.required
    }

    fn secret_ok(&self, presented: Option<&[u8]>) -> bool {
        let (Some((base, tag)), Some(p)) = (&self.check, presented) else {
            return false;
        };
        let mut m = base.clone();
        m.update(p);
        m.verify_slice(tag).is_ok()
    }

    /// Judges one request from its secret header and peer address.
    pub fn judge(&self, presented: Option<&[u8]>, peer: Option<IpAddr>) -> Trust {
        if self.required {
            return if self.secret_ok(presented) {
                Trust::Front
            } else {
                Trust::Refused
            };
        }
        if self.unix || peer.is_some_and(|ip| self.trusted.iter().any(|p| p.contains(ip))) {
            Trust::Front
        } else {
            Trust::Direct
        }
    }

    /// [`FrontAuth::judge`] for an actix request.
    pub fn check(&self, req: &HttpRequest) -> Trust {
        self.judge(
            req.headers().get(FRONT_HEADER).map(|v| v.as_bytes()),
            req.peer_addr().map(|a| a.ip()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn trust_decisions() {
        let tcp = Listen::Tcp("127.0.0.1:1".parse().unwrap());
        let unix = Listen::Unix("/tmp/x.sock".into());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let none = FrontAuth::new(&tcp, &FrontAuthSettings::default());
        assert_eq!(
            none.judge(Some(b"anything"), ip("127.0.0.1")),
            Trust::Direct
        );
        assert_eq!(
            FrontAuth::new(&unix, &FrontAuthSettings::default()).judge(None, None),
            Trust::Front
        );
        let proxies = FrontAuth::new(
            &tcp,
            &FrontAuthSettings {
                trusted_proxies: vec![IpPrefix::parse("10.0.0.0/24").unwrap()],
                ..Default::default()
            },
        );
        assert_eq!(proxies.judge(None, ip("10.0.0.7")), Trust::Front);
        assert_eq!(proxies.judge(None, ip("::ffff:10.0.0.7")), Trust::Front);
        assert_eq!(proxies.judge(None, ip("10.0.1.7")), Trust::Direct);
        assert_eq!(proxies.judge(None, None), Trust::Direct);
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        for listen in [&tcp, &unix] {
            let a = FrontAuth::new(
                listen,
                &FrontAuthSettings {
                    front_secret: Some(Secret::new(secret)),
                    ..Default::default()
                },
            );
            assert!(a.requires_secret());
            assert_eq!(a.judge(Some(secret.as_bytes()), None), Trust::Front);
            assert_eq!(a.judge(None, ip("127.0.0.1")), Trust::Refused);
            assert_eq!(a.judge(Some(b""), None), Trust::Refused);
            assert_eq!(a.judge(Some(&secret.as_bytes()[1..]), None), Trust::Refused);
            assert_eq!(
                a.judge(Some(format!("{secret}x").as_bytes()), None),
                Trust::Refused
            );
            assert!(!format!("{a:?}").contains(secret));
        }
    }
}
