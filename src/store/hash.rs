//! Hashing a local file in one streaming pass: SHA-256 of the whole file (stored as the
//! object's checksum and in its metadata) and MD5s for the ETag S3 will report — of the whole
//! file for a single PUT, per part for multipart (`md5(concat(part md5s))-N`).

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use md5::Md5;
use sha2::{Digest, Sha256};

/// S3 allows at most this many parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// How a file of a given size is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One PutObject.
    Single,
    /// Multipart with this part size (the last part may be shorter).
    Multipart { part_size: u64 },
}

impl Layout {
    /// Single below `threshold`, multipart otherwise. The part size grows (in whole MiB) when
    /// `part_size` would need more than [`MAX_PARTS`] parts.
    pub fn for_size(size: u64, threshold: u64, part_size: u64) -> Layout {
        if size < threshold {
            return Layout::Single;
        }
        let mut ps = part_size.max(1);
        if size.div_ceil(ps) > MAX_PARTS {
            const MIB: u64 = 1 << 20;
            ps = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        }
        Layout::Multipart { part_size: ps }
    }

    /// Number of parts for a file of `size` bytes (1 for a single PUT).
    pub fn parts(&self, size: u64) -> u64 {
        match self {
            Layout::Single => 1,
            Layout::Multipart { part_size } => size.div_ceil(*part_size).max(1),
        }
    }
}

/// The integrity values of one file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    pub layout: Layout,
    pub sha256: [u8; 32],
    /// MD5 of the whole file (single-part layout only).
    pub md5: Option<[u8; 16]>,
    /// MD5 of each part (multipart layout only).
    pub part_md5s: Vec<[u8; 16]>,
}

impl Digests {
    /// SHA-256 as S3's `x-amz-checksum-sha256` (base64).
    pub fn sha256_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }

    /// SHA-256 as lowercase hex (the `sha256` user metadata).
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The ETag S3 computes for this content uploaded with this layout (without quotes).
    pub fn expected_etag(&self) -> Option<String> {
        match self.layout {
            Layout::Single => self.md5.map(hex::encode),
            Layout::Multipart { .. } => Some(multipart_etag(&self.part_md5s)),
        }
    }
}

/// `hex(md5(md5_1 ‖ md5_2 ‖ … ‖ md5_N))-N`, the ETag of a completed multipart upload.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for p in part_md5s {
        h.update(p);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Open or read failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Fewer or more bytes than the stat said: the file is being written.
    #[error("file size changed while hashing (expected {expected} bytes, read {read})")]
    SizeChanged { expected: u64, read: u64 },
}

/// Reads `path` once and computes its [`Digests`] for `layout`. `expected_size` is the size
/// stat reported; reading a different amount means the file is still changing.
pub fn hash_file(path: &Path, expected_size: u64, layout: Layout) -> Result<Digests, HashError> {
    let mut f = std::fs::File::open(path)?;
    hash_reader(&mut f, expected_size, layout)
}

/// [`hash_file`] on any reader.
pub fn hash_reader(
    r: &mut impl Read,
    expected_size: u64,
    layout: Layout,
) -> Result<Digests, HashError> {
    const BUF: usize = 256 * 1024;
    let mut buf = vec![0u8; BUF];
    let mut sha = Sha256::new();
    let mut whole = Md5::new();
    let mut part = Md5::new();
    let mut part_left = match layout {
        Layout::Single => u64::MAX,
        Layout::Multipart { part_size } => part_size,
    };
    let mut part_md5s = Vec::new();
    let mut total: u64 = 0;
    loop {
        // Never read across a part boundary, so each part's MD5 covers exactly its bytes.
        let want = BUF.min(usize::try_from(part_left).unwrap_or(BUF));
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let chunk = &buf[..n];
        sha.update(chunk);
        total += n as u64;
        match layout {
            Layout::Single => whole.update(chunk),
            Layout::Multipart { part_size } => {
                part.update(chunk);
                part_left -= n as u64;
                if part_left == 0 {
                    part_md5s.push(std::mem::take(&mut part).finalize().into());
                    part_left = part_size;
                }
            }
        }
        if total > expected_size {
            return Err(HashError::SizeChanged {
                expected: expected_size,
                read: total,
            });
        }
    }
    if total != expected_size {
        return Err(HashError::SizeChanged {
            expected: expected_size,
            read: total,
        });
    }
    let (md5, part_md5s) = match layout {
        Layout::Single => (Some(whole.finalize().into()), Vec::new()),
        Layout::Multipart { part_size } => {
            if part_left != part_size || total == 0 {
                part_md5s.push(part.finalize().into());
            }
            (None, part_md5s)
        }
    };
    Ok(Digests {
        size: total,
        layout,
        sha256: sha.finalize().into(),
        md5,
        part_md5s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(b: &[u8]) -> [u8; 16] {
        Md5::digest(b).into()
    }

    #[test]
    fn single_part_values() {
        let d = hash_reader(&mut &b"hello"[..], 5, Layout::Single).unwrap();
        assert_eq!(
            d.sha256_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            d.expected_etag().unwrap(),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert_eq!(
            d.sha256_b64(),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
        let ps = 8u64 << 20;
        let d = hash_reader(
            &mut &data[..],
            data.len() as u64,
            Layout::Multipart { part_size: ps },
        )
        .unwrap();
        let parts: Vec<[u8; 16]> = data.chunks(ps as usize).map(md5).collect();
        assert_eq!(d.part_md5s, parts);
        assert_eq!(d.part_md5s.len(), 3);
        let mut cat = Vec::new();
        for p in &parts {
            cat.extend_from_slice(p);
        }
        assert_eq!(
            d.expected_etag().unwrap(),
            format!("{}-3", hex::encode(md5(&cat)))
        );
    }

    #[test]
    fn exact_multiple_of_part_size_has_no_empty_tail() {
        let data = vec![7u8; 4 * 1024];
        let d = hash_reader(&mut &data[..], 4096, Layout::Multipart { part_size: 1024 }).unwrap();
        assert_eq!(d.part_md5s.len(), 4);
        assert!(d.expected_etag().unwrap().ends_with("-4"));
    }

    #[test]
    fn size_change_is_detected() {
        assert!(matches!(
            hash_reader(&mut &b"hello!"[..], 5, Layout::Single),
            Err(HashError::SizeChanged { .. })
        ));
        assert!(matches!(
            hash_reader(&mut &b"hell"[..], 5, Layout::Single),
            Err(HashError::SizeChanged { .. })
        ));
    }

    #[test]
    fn layouts() {
        assert_eq!(Layout::for_size(10, 64, 16), Layout::Single);
        assert_eq!(
            Layout::for_size(64, 64, 16),
            Layout::Multipart { part_size: 16 }
        );
        assert_eq!(Layout::Multipart { part_size: 16 }.parts(64), 4);
        assert_eq!(Layout::Multipart { part_size: 16 }.parts(65), 5);
        // 1 TiB in 16 MiB parts would be 65 536 parts: the part size grows to fit 10 000.
        let big = 1u64 << 40;
        let Layout::Multipart { part_size } = Layout::for_size(big, 64 << 20, 16 << 20) else {
            panic!()
        };
        assert!(big.div_ceil(part_size) <= MAX_PARTS);
        assert_eq!(part_size % (1 << 20), 0);
    }
}
