//! Putting one file into S3: a single streaming PutObject below the multipart threshold (with
//! its SHA-256 sent, so the server checks the body), multipart above it. Bodies are streamed
//! from disk — for multipart, one part's byte range at a time — so memory stays bounded
//! whatever the file size. A failed multipart upload is aborted; a running one is registered
//! in [`OpenUploads`] so that no clean-up of abandoned uploads touches it.

use std::fs::File;
use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;

use super::hash::{Digests, Layout};
use super::multipart::{OpenUploads, abort};
use super::retry::{Retrier, Retryable, S3Failure, classify};

/// Name of the user-metadata entry holding the source's SHA-256 (hex): `x-amz-meta-sha256`.
pub const META_SHA256: &str = "sha256";

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The local file could not be read.
    #[error("cannot read local file {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An S3 request failed.
    #[error(transparent)]
    S3(#[from] S3Failure),
    /// S3 received a part other than the one we hashed: the file changed, or the bytes were
    /// damaged in transit.
    #[error("part {part} of {key}: S3 reports ETag {got}, the local part hashes to {want}")]
    PartMismatch {
        key: String,
        part: usize,
        got: String,
        want: String,
    },
    /// Shutdown ran out of time: the multipart upload was abandoned (and aborted).
    #[error("upload of {key} abandoned: stowaway is shutting down")]
    Aborted { key: String },
}

impl Retryable for UploadError {
    fn is_transient(&self) -> bool {
        matches!(self, UploadError::S3(f) if f.is_transient())
    }
}

/// Where an object goes and how it is labelled.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: String,
    pub cache_control: Option<&'a str>,
}

/// Content-Type from the file extension, `application/octet-stream` when unknown.
pub fn content_type(path: &Path) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}

/// A body of `len` bytes from `offset` of the open file, through a duplicate of its descriptor
/// (never reopened by path: the bytes are those of the inode that was hashed).
async fn body(file: &File, path: &Path, offset: u64, len: u64) -> Result<ByteStream, UploadError> {
    let local = |source: std::io::Error| UploadError::Local {
        path: path.to_path_buf(),
        source,
    };
    let dup = file.try_clone().map_err(local)?;
    ByteStream::read_from()
        .file(tokio::fs::File::from_std(dup))
        .offset(offset)
        .length(Length::Exact(len))
        .buffer_size(256 * 1024)
        .build()
        .await
        .map_err(|e| UploadError::Local {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })
}

/// Uploads the open `file` (`path` names it in messages; its content hashed to `d`) as `t`,
/// by the layout in `d`.
pub(super) async fn upload(
    client: &Client,
    retrier: &Retrier,
    open: &OpenUploads,
    file: &File,
    path: &Path,
    t: &Target<'_>,
    d: &Digests,
) -> Result<(), UploadError> {
    match d.layout {
        Layout::Single => put_single(client, retrier, file, path, t, d).await,
        Layout::Multipart { part_size } => {
            put_multipart(client, retrier, open, file, path, t, d, part_size).await
        }
    }
}

async fn put_single(
    client: &Client,
    retrier: &Retrier,
    file: &File,
    path: &Path,
    t: &Target<'_>,
    d: &Digests,
) -> Result<(), UploadError> {
    let sha_b64 = d.sha256_b64();
    let sha_hex = d.sha256_hex();
    let md5_b64 = d.md5.map(|m| b64(&m));
    retrier
        .run("PutObject", || async {
            let req = client
                .put_object()
                .bucket(t.bucket)
                .key(t.key)
                .body(body(file, path, 0, d.size).await?)
                .content_length(d.size as i64)
                .content_type(&t.content_type)
                .set_cache_control(t.cache_control.map(str::to_string))
                // The server hashes the body and refuses it (BadDigest) if it differs.
                .checksum_sha256(&sha_b64)
                .set_content_md5(md5_b64.clone())
                .metadata(META_SHA256, &sha_hex);
            req.send()
                .await
                .map_err(|e| UploadError::S3(classify("PutObject", t.bucket, t.key, &e)))?;
            Ok(())
        })
        .await
}

#[allow(clippy::too_many_arguments)]
async fn put_multipart(
    client: &Client,
    retrier: &Retrier,
    open: &OpenUploads,
    file: &File,
    path: &Path,
    t: &Target<'_>,
    d: &Digests,
    part_size: u64,
) -> Result<(), UploadError> {
    let sha_hex = d.sha256_hex();
    let created = retrier
        .run("CreateMultipartUpload", || async {
            client
                .create_multipart_upload()
                .bucket(t.bucket)
                .key(t.key)
                .content_type(&t.content_type)
                .set_cache_control(t.cache_control.map(str::to_string))
                .metadata(META_SHA256, &sha_hex)
                .send()
                .await
                .map_err(|e| classify("CreateMultipartUpload", t.bucket, t.key, &e))
        })
        .await?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(UploadError::S3(S3Failure {
            class: super::retry::Class::Transient,
            status: None,
            code: None,
            message: format!(
                "S3 CreateMultipartUpload s3://{}/{} returned no upload id",
                t.bucket, t.key
            ),
        }));
    };
    let _open = open.open(&upload_id);
    tracing::info!(
        key = t.key,
        upload_id = %upload_id,
        bytes = d.size,
        parts = d.part_md5s.len(),
        "multipart upload started"
    );
    match send_parts(client, retrier, file, path, t, d, part_size, &upload_id).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Leave no invisible half-upload behind (it would be billed). Should S3 be
            // unreachable, the clean-up of abandoned uploads at a later rescan or start (or
            // the bucket's AbortIncompleteMultipartUpload rule) removes it.
            if let Err(ae) = abort(client, retrier, t.bucket, t.key, &upload_id).await {
                tracing::warn!(key = t.key, upload_id = %upload_id, error = %ae, "could not abort the failed multipart upload");
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_parts(
    client: &Client,
    retrier: &Retrier,
    file: &File,
    path: &Path,
    t: &Target<'_>,
    d: &Digests,
    part_size: u64,
    upload_id: &str,
) -> Result<(), UploadError> {
    let mut done = Vec::with_capacity(d.part_md5s.len());
    for (i, md5) in d.part_md5s.iter().enumerate() {
        if retrier.stop().is_aborting() {
            return Err(UploadError::Aborted {
                key: t.key.to_string(),
            });
        }
        let n = i as i32 + 1;
        let offset = i as u64 * part_size;
        let len = part_size.min(d.size - offset);
        let want = hex::encode(md5);
        let md5_b64 = b64(md5);
        let out = retrier
            .run("UploadPart", || async {
                client
                    .upload_part()
                    .bucket(t.bucket)
                    .key(t.key)
                    .upload_id(upload_id)
                    .part_number(n)
                    .content_length(len as i64)
                    // Real S3 refuses a part whose bytes do not match (s3s-fs does not check;
                    // the ETag comparison below and the final verification catch it there).
                    .content_md5(&md5_b64)
                    .body(body(file, path, offset, len).await?)
                    .send()
                    .await
                    .map_err(|e| UploadError::S3(classify("UploadPart", t.bucket, t.key, &e)))
            })
            .await?;
        let got = out.e_tag().map(unquote).unwrap_or_default().to_string();
        if !got.is_empty() && got != want {
            return Err(UploadError::PartMismatch {
                key: t.key.to_string(),
                part: n as usize,
                got,
                want,
            });
        }
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(format!("\"{want}\""))
                .build(),
        );
    }
    let parts = CompletedMultipartUpload::builder()
        .set_parts(Some(done))
        .build();
    retrier
        .run("CompleteMultipartUpload", || async {
            client
                .complete_multipart_upload()
                .bucket(t.bucket)
                .key(t.key)
                .upload_id(upload_id)
                .multipart_upload(parts.clone())
                .send()
                .await
                .map_err(|e| classify("CompleteMultipartUpload", t.bucket, t.key, &e))
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("/r/a.jpg")), "image/jpeg");
        assert_eq!(content_type(Path::new("/r/a.PNG")), "image/png");
        assert_eq!(
            content_type(Path::new("/r/noext")),
            "application/octet-stream"
        );
    }
}
