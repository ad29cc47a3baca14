//! A test world: a temporary directory with a mount root and an archive ([`Dirs`]), plus an
//! S3 server with the mount's bucket ([`World`]), filling the `{placeholders}` of the TOML
//! fixtures under `tests/fixtures/` and starting the real binary on them.

use std::path::{Path, PathBuf};

use super::{S3Server, Stowaway, fixture};

/// The file-system side of a test: `<tmp>/<root>` and `<tmp>/<archive>`, both created.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub archive: PathBuf,
}

impl Dirs {
    /// `root` and `archive` are relative to a fresh temporary directory.
    pub fn new(root: &str, archive: &str) -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(root);
        let archive = tmp.path().join(archive);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&archive).unwrap();
        Dirs { tmp, root, archive }
    }

    /// The temporary directory (configs, logs, front-server prefixes go here).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn in_root(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    pub fn in_archive(&self, rel: &str) -> bool {
        self.archive.join(rel).exists()
    }

    /// `{root}`, `{archive}` and `{dir}` for [`fixture`].
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dir", self.path().display().to_string()),
            ("root", self.root.display().to_string()),
            ("archive", self.archive.display().to_string()),
        ]
    }
}

/// [`Dirs`] plus an S3 server holding the mount's bucket.
pub struct World {
    pub dirs: Dirs,
    pub s3: S3Server,
    pub bucket: String,
}

impl std::ops::Deref for World {
    type Target = Dirs;
    fn deref(&self) -> &Dirs {
        &self.dirs
    }
}

impl World {
    /// Root `root/`, archive `archive/`, bucket `bucket` created.
    pub fn new(bucket: &str) -> World {
        Self::with_dirs(bucket, Dirs::new("root", "archive"))
    }

    /// A site layout: root `site/static/` (as a web site's static folder), archive `archive/`.
    pub fn site(bucket: &str) -> World {
        Self::with_dirs(bucket, Dirs::new("site/static", "archive"))
    }

    fn with_dirs(bucket: &str, dirs: Dirs) -> World {
        let s3 = S3Server::start();
        s3.create_bucket(bucket);
        World {
            dirs,
            s3,
            bucket: bucket.to_string(),
        }
    }

    /// `tests/fixtures/<name>` with `{dir}`, `{root}`, `{archive}`, `{region}`, `{endpoint}`,
    /// `{bucket}` filled in from this world, then `extra`.
    pub fn config(&self, name: &str, extra: &[(&str, &str)]) -> String {
        let mut vars = self.dirs.vars();
        vars.push(("region", super::REGION.to_string()));
        vars.push(("endpoint", self.s3.endpoint.clone()));
        vars.push(("bucket", self.bucket.clone()));
        let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        fixture(name, &all)
    }

    /// `stowaway serve` on `config` in this world's directory, up and healthy.
    pub fn start(&self, config: &str) -> Stowaway {
        Stowaway::start(self.path(), config)
    }

    /// `<endpoint>/<bucket>/<key_prefix>`: how every redirect of the mount begins.
    pub fn bucket_url(&self, key_prefix: &str) -> String {
        format!("{}/{}/{key_prefix}", self.s3.endpoint, self.bucket)
    }
}

/// What one `stowaway rm` run printed and how it exited.
#[derive(Debug)]
pub struct RmRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RmRun {
    /// Whether stdout has the line `rm <path>: <place>: <text…>` beginning so.
    pub fn says(&self, path: &str, place: &str, text: &str) -> bool {
        let start = format!("rm {path}: {place}: {text}");
        self.stdout.lines().any(|l| l.starts_with(&start))
    }
}

/// `stowaway rm --config <config> <paths…>`, run to the end.
pub fn stowaway_rm(config: &Path, paths: &[&str]) -> RmRun {
    let out = super::stowaway_cmd()
        .arg("rm")
        .arg("--config")
        .arg(config)
        .args(paths)
        .output()
        .unwrap();
    RmRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `stowaway <args…> --config <config>`, run to the end.
pub fn stowaway_run(config: &Path, args: &[&str]) -> std::process::Output {
    super::stowaway_cmd()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}
