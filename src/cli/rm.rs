//! `stowaway rm URL-PATH…` on the command line: removes each file everywhere it lives and
//! records its tombstone ([`crate::remove`] does the work, shared with the admin API),
//! reporting every place on its own line; exits non-zero if any place failed. Running it again
//! is safe and finishes what a failed run left.

use std::process::ExitCode;

use crate::config::Settings;
use crate::remove::{Options, Report, Step, locate, remove};

/// Exit code when some place could not be cleared.
pub const EXIT_FAILED: u8 = 1;

/// The report as lines: `rm <path>: <place>: <what happened>`.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for (place, step) in &r.steps {
        let (mark, text) = match step {
            Step::Done(t) => ("", t.as_str()),
            Step::Failed(t) => ("FAILED: ", t.as_str()),
        };
        out.push_str(&format!("rm {}: {place}: {mark}{text}\n", r.path));
    }
    out
}

/// The `rm` command: logging, runtime, one report per path, exit code.
pub fn main(settings: Settings, paths: &[String], opts: Options) -> ExitCode {
    super::init_logging_to(&settings, "warn", "warn", std::io::stderr);
    // Every path is checked before anything is removed: a typo in the fifth must not leave
    // the first four half-done.
    let mut located = Vec::with_capacity(paths.len());
    for p in paths {
        match locate(&settings, p) {
            Ok(l) => located.push((p, l)),
            Err(e) => {
                eprintln!("stowaway: rm: {e}; nothing was removed");
                return ExitCode::from(super::EXIT_CONFIG);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stowaway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = rt.block_on(async {
        let store = crate::tombstone::connect(&settings).await;
        let mut failed = 0usize;
        for (p, (mount, key)) in &located {
            let m = &settings.mounts[*mount];
            let cache_dir = crate::remove::cache_dir(&settings, *mount);
            let r = remove(&store, m, cache_dir, key, p, opts).await;
            print!("{}", render(&r));
            if r.failed() {
                failed += 1;
            }
        }
        failed
    });
    if failed > 0 {
        eprintln!(
            "stowaway: rm: {failed} of {} path(s) not removed everywhere (see FAILED above); run the same command again once the cause is fixed: what is done stays done",
            located.len()
        );
        return ExitCode::from(EXIT_FAILED);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_name_each_place() {
        let r = Report {
            path: "/static/a b.jpg".into(),
            steps: vec![
                (
                    "tombstone",
                    Step::Done("recorded until 2026-01-08T00:00:00Z".into()),
                ),
                ("root", Step::Done("not there".into())),
                (
                    "s3",
                    Step::Failed("cannot delete s3://b/a b.jpg: down".into()),
                ),
            ],
        };
        assert_eq!(
            render(&r),
            "rm /static/a b.jpg: tombstone: recorded until 2026-01-08T00:00:00Z\n\
             rm /static/a b.jpg: root: not there\n\
             rm /static/a b.jpg: s3: FAILED: cannot delete s3://b/a b.jpg: down\n"
        );
    }
}
