//! Records the git commit for `stowaway --version` and the `stowaway_build_info` metric.
//!
//! Order: `STOWAWAY_GIT_COMMIT` from the environment (packagers building from a tarball),
//! then `git rev-parse` when this crate is the top of a git checkout, then the commit cargo
//! recorded in `.cargo_vcs_info.json` when the crate was packaged (crates.io tarballs), else
//! `unknown`. Nothing here may fail the build: `cargo install` from a tarball has no git.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The commit of the checkout this crate is the top of (not of a repository that merely
/// contains an unpacked tarball), and files whose change means a new commit.
fn from_git(manifest: &Path) -> Option<(String, Vec<PathBuf>)> {
    let top = PathBuf::from(git(manifest, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest.canonicalize().ok()? {
        return None;
    }
    let commit = git(manifest, &["rev-parse", "--short=12", "HEAD"])?;
    let mut watch = Vec::new();
    if let Some(d) = git(manifest, &["rev-parse", "--absolute-git-dir"]) {
        watch.push(Path::new(&d).join("HEAD"));
        // Updated by every commit, checkout and reset in this worktree.
        watch.push(Path::new(&d).join("logs").join("HEAD"));
    }
    if let Some(common) = git(manifest, &["rev-parse", "--git-common-dir"]) {
        let common = manifest.join(common);
        watch.push(common.join("packed-refs"));
        if let Some(r) = git(manifest, &["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(r));
        }
    }
    Some((commit, watch))
}

/// `"sha1": "<40 hex>"` from the file `cargo package` writes.
fn from_vcs_info(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest.join(".cargo_vcs_info.json")).ok()?;
    let after = text.split("\"sha1\"").nth(1)?;
    let hex: String = after
        .chars()
        .skip_while(|c| !c.is_ascii_hexdigit())
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() >= 12).then(|| hex[..12].to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=STOWAWAY_GIT_COMMIT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match std::env::var("STOWAWAY_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => match from_git(&manifest) {
            Some((c, watch)) => {
                for p in watch.iter().filter(|p| p.exists()) {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
                c
            }
            None => from_vcs_info(&manifest).unwrap_or_else(|| "unknown".into()),
        },
    };
    // Only characters safe in a version string and a Prometheus label.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(40)
        .collect();
    println!("cargo:rustc-env=STOWAWAY_GIT_COMMIT={commit}");
}
