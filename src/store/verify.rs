//! Checking what S3 holds against the local file, before anything local is touched, and
//! before uploading (an identical object is not uploaded again).
//!
//! Proof of integrity is the stored SHA-256 checksum (single PUT) or an ETag we can recompute
//! locally: the hex MD5 for a single PUT, `md5(concat(part md5s))-N` for multipart (s3s-fs
//! and many S3 servers keep no checksum for multipart objects). The `sha256` user metadata is
//! only what the uploader claimed, so it is compared when present but never proof on its own.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::ChecksumMode;

use super::hash::{Digests, Layout};
use super::retry::{Retrier, S3Failure, classify};
use super::upload::META_SHA256;

/// What HeadObject said about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// 404.
    Missing,
    /// 403 without an error code (HEAD has no body): S3 answers this for a missing key when
    /// the caller may not list the bucket, so it is not conclusive.
    Forbidden,
    /// The object exists.
    Present(RemoteObject),
}

/// The attributes of a stored object that matter for verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteObject {
    pub size: Option<i64>,
    /// Without quotes.
    pub etag: Option<String>,
    /// Base64, as S3 returns it.
    pub checksum_sha256: Option<String>,
    /// Hex, from `x-amz-meta-sha256`.
    pub meta_sha256: Option<String>,
}

/// Why a stored object does not prove the local content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("size differs: S3 has {remote:?} bytes, the local file {local}")]
    Size { remote: Option<i64>, local: u64 },
    #[error("SHA-256 checksum differs: S3 has {remote}, the local file {local}")]
    Checksum { remote: String, local: String },
    #[error("ETag differs: S3 has {remote}, the local file gives {local}")]
    Etag { remote: String, local: String },
    #[error("sha256 metadata differs: S3 has {remote}, the local file {local}")]
    Metadata { remote: String, local: String },
    #[error(
        "S3 returned no integrity value that can be checked (ETag {etag:?}, no SHA-256 checksum)"
    )]
    Unprovable { etag: Option<String> },
}

/// How the content was proven equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The stored SHA-256 checksum matched (and the ETag, when it was comparable).
    Checksum,
    /// The ETag matched (the only value for multipart objects).
    Etag,
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proof::Checksum => "sha256-checksum",
            Proof::Etag => "etag",
        })
    }
}

/// An object whose stored content was proven equal to local digests. Only
/// [`ObjectStore::verify`](super::ObjectStore::verify) makes one, so whatever requires it (the
/// finalize step, which may delete the local file) cannot run on an unverified upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    proof: Proof,
    digests: Digests,
}

impl Verified {
    pub(super) fn new(proof: Proof, digests: Digests) -> Self {
        Verified { proof, digests }
    }

    /// For unit tests of code that requires a verified object.
    #[cfg(test)]
    pub(crate) fn assumed(digests: Digests) -> Self {
        Verified::new(Proof::Checksum, digests)
    }

    /// What proved it.
    pub fn proof(&self) -> Proof {
        self.proof
    }

    /// The local content it was proven equal to.
    pub fn digests(&self) -> &Digests {
        &self.digests
    }
}

/// Why an object could not be verified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// The object differs from the local content (or cannot be proven equal).
    #[error("verification of s3://{bucket}/{key} failed: {mismatch}")]
    Mismatch {
        bucket: String,
        key: String,
        mismatch: Mismatch,
    },
    /// There is no such object.
    #[error(
        "verification of s3://{bucket}/{key} failed: the object is missing right after the upload"
    )]
    Missing { bucket: String, key: String },
    /// HeadObject is refused, so nothing can be proven.
    #[error(
        "cannot verify s3://{bucket}/{key}: HeadObject is forbidden — grant s3:GetObject, stowaway reads every object back before it removes the local file"
    )]
    Forbidden { bucket: String, key: String },
    /// The request failed.
    #[error(transparent)]
    S3(#[from] S3Failure),
}

/// Turns a HeadObject answer into a verified object or the reason it is not one.
pub(super) fn verdict(
    head: Head,
    bucket: &str,
    key: &str,
    d: &Digests,
) -> Result<Verified, VerifyError> {
    let (bucket, key) = (bucket.to_string(), key.to_string());
    match head {
        Head::Present(obj) => match check(&obj, d) {
            Ok(proof) => Ok(Verified::new(proof, d.clone())),
            Err(mismatch) => Err(VerifyError::Mismatch {
                bucket,
                key,
                mismatch,
            }),
        },
        Head::Missing => Err(VerifyError::Missing { bucket, key }),
        Head::Forbidden => Err(VerifyError::Forbidden { bucket, key }),
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares a stored object with the local digests. Pure.
pub fn check(remote: &RemoteObject, d: &Digests) -> Result<Proof, Mismatch> {
    if remote.size != Some(d.size as i64) {
        return Err(Mismatch::Size {
            remote: remote.size,
            local: d.size,
        });
    }
    let mut proof = None;
    // A composite checksum (`…-N`) covers parts, not the whole object: not comparable.
    if let Some(c) = remote
        .checksum_sha256
        .as_deref()
        .filter(|c| !c.contains('-'))
    {
        let local = d.sha256_b64();
        if c != local {
            return Err(Mismatch::Checksum {
                remote: c.to_string(),
                local,
            });
        }
        proof = Some(Proof::Checksum);
    }
    if let Some(etag) = remote.etag.as_deref() {
        let (hash, parts) = match etag.split_once('-') {
            Some((h, n)) => (h, n.parse::<usize>().ok()),
            None => (etag, None),
        };
        // Only ETags of the shape S3 gives unencrypted objects can be recomputed; others (SSE-KMS,
        // servers with opaque ETags) are ignored, and then the checksum must prove it.
        let comparable = is_hex(hash)
            && hash.len() == 32
            && match (parts, d.layout) {
                (None, Layout::Single) => true,
                (Some(n), Layout::Multipart { .. }) => n == d.part_md5s.len(),
                _ => false,
            };
        if comparable {
            let local = d.expected_etag().unwrap_or_default();
            if !etag.eq_ignore_ascii_case(&local) {
                return Err(Mismatch::Etag {
                    remote: etag.to_string(),
                    local,
                });
            }
            proof.get_or_insert(Proof::Etag);
        }
    }
    if let Some(m) = remote.meta_sha256.as_deref() {
        let local = d.sha256_hex();
        if !m.eq_ignore_ascii_case(&local) {
            return Err(Mismatch::Metadata {
                remote: m.to_string(),
                local,
            });
        }
    }
    proof.ok_or_else(|| Mismatch::Unprovable {
        etag: remote.etag.clone(),
    })
}

/// HeadObject with checksums requested, retried on transient failures.
pub(super) async fn head(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
) -> Result<Head, S3Failure> {
    retrier
        .run("HeadObject", || async {
            match client
                .head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
            {
                Ok(o) => Ok(Head::Present(RemoteObject {
                    size: o.content_length(),
                    etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                    checksum_sha256: o.checksum_sha256().map(str::to_string),
                    meta_sha256: o.metadata().and_then(|m| m.get(META_SHA256)).cloned(),
                })),
                Err(e) => {
                    if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                        return Ok(Head::Missing);
                    }
                    let f = classify("HeadObject", bucket, key, &e);
                    match (f.status, f.code.as_deref()) {
                        (Some(404), None) => Ok(Head::Missing),
                        (Some(403), None) => Ok(Head::Forbidden),
                        _ => Err(f),
                    }
                }
            }
        })
        .await
}

/// A definite "this bucket does not exist" (HeadBucket 404), as a mount-wide failure; `None`
/// when the bucket exists or we cannot tell (HeadBucket needs s3:ListBucket, which an
/// upload-only policy may not grant; transport errors surface on the uploads themselves).
pub(super) async fn bucket_missing(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
) -> Option<S3Failure> {
    let res = retrier
        .run("HeadBucket", || async {
            match client.head_bucket().bucket(bucket).send().await {
                Ok(_) => Ok(false),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(true),
                Err(e) => {
                    let f = classify("HeadBucket", bucket, "", &e);
                    if f.status == Some(404) {
                        Ok(true)
                    } else {
                        Err(f)
                    }
                }
            }
        })
        .await;
    match res {
        Ok(true) => Some(S3Failure {
            class: super::retry::Class::MountWide,
            status: Some(404),
            code: Some("NoSuchBucket".into()),
            message: format!(
                "S3 HeadBucket s3://{bucket} failed: NoSuchBucket (HTTP 404) — {}",
                super::retry::advice("NoSuchBucket").unwrap_or_default()
            ),
        }),
        Ok(false) => None,
        Err(f) => {
            tracing::debug!(bucket, error = %f, "cannot check whether the bucket exists; going on");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::{Layout, hash_reader};
    use super::*;

    fn single(data: &[u8]) -> Digests {
        hash_reader(&mut &data[..], data.len() as u64, Layout::Single).unwrap()
    }

    #[test]
    fn single_part_checks() {
        let d = single(b"hello");
        let ok = RemoteObject {
            size: Some(5),
            etag: Some("5d41402abc4b2a76b9719d911017c592".into()),
            checksum_sha256: Some(d.sha256_b64()),
            meta_sha256: Some(d.sha256_hex()),
        };
        assert_eq!(check(&ok, &d), Ok(Proof::Checksum));
        let etag_only = RemoteObject {
            checksum_sha256: None,
            meta_sha256: None,
            ..ok.clone()
        };
        assert_eq!(check(&etag_only, &d), Ok(Proof::Etag));
        assert!(matches!(
            check(
                &RemoteObject {
                    size: Some(4),
                    ..ok.clone()
                },
                &d
            ),
            Err(Mismatch::Size { .. })
        ));
        assert!(matches!(
            check(
                &RemoteObject {
                    size: None,
                    ..ok.clone()
                },
                &d
            ),
            Err(Mismatch::Size { .. })
        ));
        let other = single(b"hellO");
        assert!(matches!(
            check(
                &RemoteObject {
                    checksum_sha256: Some(other.sha256_b64()),
                    ..ok.clone()
                },
                &d
            ),
            Err(Mismatch::Checksum { .. })
        ));
        assert!(matches!(
            check(
                &RemoteObject {
                    etag: Some("00000000000000000000000000000000".into()),
                    ..ok.clone()
                },
                &d
            ),
            Err(Mismatch::Etag { .. })
        ));
        assert!(matches!(
            check(
                &RemoteObject {
                    meta_sha256: Some(other.sha256_hex()),
                    ..ok.clone()
                },
                &d
            ),
            Err(Mismatch::Metadata { .. })
        ));
        // Opaque ETag (e.g. SSE-KMS) and no checksum: nothing proves the content.
        let opaque = RemoteObject {
            size: Some(5),
            etag: Some("abc".into()),
            checksum_sha256: None,
            meta_sha256: Some(d.sha256_hex()),
        };
        assert!(matches!(
            check(&opaque, &d),
            Err(Mismatch::Unprovable { .. })
        ));
        // Opaque ETag but a checksum: fine.
        assert_eq!(
            check(
                &RemoteObject {
                    checksum_sha256: Some(d.sha256_b64()),
                    ..opaque
                },
                &d
            ),
            Ok(Proof::Checksum)
        );
    }

    #[test]
    fn verdicts_prove_or_say_why_not() {
        let d = single(b"hello");
        let ok = RemoteObject {
            size: Some(5),
            etag: Some("5d41402abc4b2a76b9719d911017c592".into()),
            checksum_sha256: None,
            meta_sha256: None,
        };
        let v = verdict(Head::Present(ok.clone()), "b", "k", &d).unwrap();
        assert_eq!(v.proof(), Proof::Etag);
        assert_eq!(v.digests(), &d, "the proof is about exactly these digests");
        let short = RemoteObject {
            size: Some(4),
            ..ok
        };
        let e = verdict(Head::Present(short), "b", "k", &d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "verification of s3://b/k failed: size differs: S3 has Some(4) bytes, the local file 5"
        );
        let e = verdict(Head::Missing, "b", "k", &d).unwrap_err();
        assert_eq!(
            e.to_string(),
            "verification of s3://b/k failed: the object is missing right after the upload"
        );
        let e = verdict(Head::Forbidden, "b", "k", &d).unwrap_err();
        assert!(
            matches!(e, VerifyError::Forbidden { .. })
                && e.to_string()
                    .starts_with("cannot verify s3://b/k: HeadObject is forbidden"),
            "{e}"
        );
    }

    #[test]
    fn multipart_checks() {
        let data = vec![3u8; 2500];
        let d = hash_reader(&mut &data[..], 2500, Layout::Multipart { part_size: 1000 }).unwrap();
        let etag = d.expected_etag().unwrap();
        assert!(etag.ends_with("-3"));
        let ok = RemoteObject {
            size: Some(2500),
            etag: Some(etag.clone()),
            checksum_sha256: None,
            meta_sha256: None,
        };
        assert_eq!(check(&ok, &d), Ok(Proof::Etag));
        // Same bytes uploaded with another part size: cannot be compared, so not proven.
        let other_layout = RemoteObject {
            etag: Some(format!("{}-2", &etag[..32])),
            ..ok.clone()
        };
        assert!(matches!(
            check(&other_layout, &d),
            Err(Mismatch::Unprovable { .. })
        ));
        let wrong = RemoteObject {
            etag: Some(format!("{}-3", "0".repeat(32))),
            ..ok
        };
        assert!(matches!(check(&wrong, &d), Err(Mismatch::Etag { .. })));
    }
}
