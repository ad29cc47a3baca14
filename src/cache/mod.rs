//! The hot-object cache: popular migrated objects brought back to local disk so the front
//! server sends them itself instead of redirecting every client to S3.
//!
//! * [`policy`]: which objects are kept — admission by popularity, eviction by size (pure, no
//!   I/O; driven by the request path and by the trace benchmark alike).

pub mod policy;
