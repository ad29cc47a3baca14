//! A tmpfs mounted for a test (another file system, of a chosen size), unmounted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The mount point is `.0`.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`) on `dir`, creating it; `None` where mounting is
    /// not allowed (needs root / CAP_SYS_ADMIN), so the caller can skip or fall back.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Grows or shrinks the mounted file system (to fill it up or free it again).
    pub fn resize(&self, size: &str) {
        self.remount(&format!("size={size}"));
    }

    /// Changes mount options (e.g. `"noatime"`).
    pub fn remount(&self, options: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "remount tmpfs -o {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
