//! Moved to [`crate::url`]; this path stays until the issue-13 branches are merged.

pub use crate::url::{MountUrls, PresignError, Signer, SigningCredentials, amz_dates};
