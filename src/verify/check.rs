//! The second build of `check`: every wheel of the first build built again under variations,
//! with the same build-dependency wheels, so that a difference belongs to the package itself.

use crate::build::FinalJob;
use crate::build::backend::Backend;
use crate::build::job::{JobError, Settings};
use crate::verify::compare::Clues;
use crate::verify::variation::Variation;
use std::path::PathBuf;
use std::sync::Arc;

/// The second build's settings: each variation in `set` changes its input.
pub fn vary(base: &Settings, set: &[Variation]) -> Settings {
    let mut s = base.clone();
    for v in set {
        match v {
            Variation::Umask => s.umask = if base.umask == 0o022 { 0o002 } else { 0o022 },
            Variation::Timezone => s.timezone = "XXX-14".into(),
            Variation::Locale => s.locale = "en_US.UTF-8".into(),
            Variation::Hostname => s.hostname = format!("{}-varied", base.hostname),
            Variation::Uid => s.uid = base.uid + 1,
            Variation::HashSeed => s.hash_seed = "1234567".into(),
            Variation::Env => s
                .extra_env
                .push(("REWHEEL_NOISE".into(), "rewheel-variation-noise".into())),
            Variation::NumCpus => s.cpus = Some("0".into()),
            // The build path is the backend's folder; time is when the build runs.
            Variation::BuildPath | Variation::Time => {}
        }
    }
    s
}

/// What the variations put where a build can see it, for attribution.
pub fn clues(
    base: &Settings,
    varied: &Settings,
    set: &[Variation],
) -> Vec<(Variation, String, String)> {
    let mut out = Vec::new();
    if set.contains(&Variation::Hostname) {
        out.push((
            Variation::Hostname,
            base.hostname.clone(),
            varied.hostname.clone(),
        ));
    }
    if set.contains(&Variation::Locale) {
        out.push((
            Variation::Locale,
            base.locale.clone(),
            varied.locale.clone(),
        ));
    }
    if set.contains(&Variation::Timezone) {
        out.push((Variation::Timezone, String::new(), varied.timezone.clone()));
    }
    if set.contains(&Variation::Env) {
        out.push((
            Variation::Env,
            String::new(),
            "rewheel-variation-noise".into(),
        ));
    }
    out
}

/// One wheel built again.
pub struct Rebuilt {
    pub cell: String,
    pub filename: String,
    pub result: Result<(PathBuf, String), String>,
    pub window: (i64, i64),
    pub build_path: PathBuf,
}

/// Build each final wheel again with `settings` on `backend`, `jobs` at a time. With the time
/// variation, no job starts within 2 s of its first build (zip times have 2 s steps).
pub async fn rebuild(
    finals: &[FinalJob],
    backend: Arc<dyn Backend>,
    settings: &Settings,
    jobs: usize,
    vary_time: bool,
    out_dir: PathBuf,
) -> Vec<Rebuilt> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = std::collections::HashMap::new();
    for f in finals {
        let mut spec = f.spec.clone();
        spec.settings = settings.clone();
        spec.proceed = true;
        let (backend, semaphore, out_dir) = (backend.clone(), semaphore.clone(), out_dir.clone());
        let (ended, cell, filename) = (f.window.1, f.spec.cell.clone(), f.filename.clone());
        let what = (cell.clone(), filename.clone());
        let handle = tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await.expect("never closed");
            if vary_time {
                let wait = ended + 2 - jiff::Timestamp::now().as_second();
                if wait > 0 {
                    tokio::time::sleep(std::time::Duration::from_secs(wait as u64)).await;
                }
            }
            let (dir, root) = backend.job_dir(&spec);
            let began = jiff::Timestamp::now().as_second();
            let result = backend.run(&spec, &dir).await;
            let window = (began, jiff::Timestamp::now().as_second());
            let result = match result {
                Ok(output) => {
                    let bytes = output.wheel;
                    let sha = crate::fsutil::sha256_hex(&bytes);
                    let path = out_dir.join(&cell).join(&filename);
                    let kept = crate::fsutil::write_atomic(&path, &bytes).map(|()| (path, sha));
                    let _ = std::fs::remove_dir_all(&dir);
                    kept.map_err(|e| e.to_string())
                }
                Err(JobError::Needs(r)) => Err(format!("the backend asked for {r:?} again")),
                Err(e) => Err(e.to_string()),
            };
            Rebuilt {
                cell,
                filename,
                result,
                window,
                build_path: root,
            }
        });
        names.insert(handle.id(), what);
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => out.push(r),
            // A rebuild that panicked is a failed rebuild of that wheel, not a missing wheel.
            Err(err) => {
                if let Some((cell, filename)) = names.remove(&err.id()) {
                    out.push(Rebuilt {
                        cell,
                        filename,
                        result: Err(format!("rewheel failed while rebuilding it (a bug): {err}")),
                        window: (0, 0),
                        build_path: PathBuf::new(),
                    });
                }
            }
        }
    }
    out
}

/// Clues per wheel from both builds: the build folders and the windows.
pub fn per_wheel_clues(
    finals: &[FinalJob],
    rebuilt: &[Rebuilt],
    clues: &mut Clues,
    build_path_varies: bool,
) {
    for r in rebuilt {
        let Some(f) = finals
            .iter()
            .find(|f| f.spec.cell == r.cell && f.filename == r.filename)
        else {
            continue;
        };
        let key = (r.cell.clone(), r.filename.clone());
        clues.windows.insert(key.clone(), [f.window, r.window]);
        if build_path_varies {
            clues.per_wheel.insert(
                key,
                vec![(
                    Variation::BuildPath,
                    f.build_path.display().to_string(),
                    r.build_path.display().to_string(),
                )],
            );
        }
    }
}
