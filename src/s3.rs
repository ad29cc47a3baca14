//! Compatibility shim: the S3 layer lives in [`crate::store`] now. Kept so paths other areas
//! use keep working until the merge; remove afterwards.

pub use crate::store::aws::{
    CredentialsError, fetch_credentials, init_signer, probe_client as client, refresh_delay,
    require_credentials, sdk_config, spawn_refresher,
};
pub use crate::store::error_chain;
pub use crate::store::online::{OnlineError, S3Answer, check_online, explain};
