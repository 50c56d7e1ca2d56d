//! One attempt at a job, the same for `build`, `check`'s second side, a plan's probes and a CI
//! job: the job's folder placed and fingerprinted, the job run on a backend, its output read
//! as untrusted (by the backend, through `job::collect`), requirements the backend names at
//! build time weighed against the cell's markers, the folder cleaned, and a typed outcome with
//! the record the store and CI documents keep. What happens next (grow the graph, fail, write
//! a wheelhouse) is the caller's: the executor schedules, the others follow one job.

use crate::build::backend::Backend;
use crate::build::job::{Fingerprint, JobEnd, JobError, JobOutput, JobSpec};
use crate::digest::Sha256;
use crate::store::JobOutcome;
use pep508_rs::MarkerEnvironment;
use std::path::PathBuf;
use std::time::Instant;

/// Where a job runs and what its inputs hash to, decided once before it runs (the executor
/// and a CI job look the fingerprint up in their caches first).
#[derive(Debug, Clone)]
pub struct Placement {
    /// The job's folder on the host.
    pub dir: PathBuf,
    /// The job's folder as the job sees it.
    pub build_path: PathBuf,
    /// Where the job sees the sdist's top folder unpacked: what builds embed.
    pub source_parent: PathBuf,
    pub fingerprint: String,
    pub fingerprint_sha256: Sha256,
}

impl Placement {
    pub fn of(backend: &dyn Backend, spec: &JobSpec) -> Self {
        let (dir, build_path) = backend.job_dir(spec);
        let source_parent = backend
            .source_parent()
            .unwrap_or_else(|| build_path.join("src"));
        let (fingerprint, fingerprint_sha256) =
            Fingerprint::of(spec, backend.runtime(&spec.cell).as_ref(), &source_parent);
        Self {
            dir,
            build_path,
            source_parent,
            fingerprint,
            fingerprint_sha256,
        }
    }
}

/// How one attempt ended.
pub enum Attempted {
    /// A wheel, read from the job's folder and checked.
    Built(JobOutput),
    /// The backend named requirements for this cell that are not installed: the job stopped
    /// before building; it can run again once they are built.
    Needs(Vec<String>),
    /// A probe's answer: everything the hook named (markers not yet evaluated).
    Probed(Vec<String>),
    Failed(Failure),
}

/// A job that failed, with what it said and why, in the words the store records.
pub struct Failure {
    pub message: String,
    pub log: Vec<u8>,
    /// The job's inputs are at fault (an unsafe sdist), not the build.
    pub input: bool,
    /// A disk was full: the host's fault; the job's folder was removed to free it.
    pub out_of_space: bool,
}

/// One attempt: how it ended, how long it took and when (the clues of `check` use windows).
pub struct Attempt {
    pub attempted: Attempted,
    pub seconds: f64,
    pub window: (i64, i64),
}

impl Attempt {
    /// What the store (and a CI result document) records of this attempt. `wheel_sha256` is
    /// the wheel's, when the caller hashed it already (a wheel can be large).
    pub fn outcome(
        &self,
        spec: &JobSpec,
        placement: &Placement,
        wheel_sha256: Option<&Sha256>,
    ) -> JobOutcome {
        let (identity, fingerprint) = (spec.identity(), placement.fingerprint.clone());
        match &self.attempted {
            Attempted::Built(output) => JobOutcome::built(
                identity,
                fingerprint,
                self.seconds,
                (
                    output.wheel_filename.clone(),
                    wheel_sha256
                        .cloned()
                        .unwrap_or_else(|| Sha256::of(&output.wheel)),
                ),
            ),
            Attempted::Needs(requirements) => JobOutcome::failed(
                identity,
                fingerprint,
                self.seconds,
                needs_message(requirements),
            ),
            Attempted::Probed(_) => JobOutcome::failed(
                identity,
                fingerprint,
                self.seconds,
                "a probe builds no wheel".into(),
            ),
            Attempted::Failed(failure) => {
                JobOutcome::failed(identity, fingerprint, self.seconds, failure.message.clone())
            }
        }
    }

    /// The log the job wrote, whatever the ending.
    pub fn log(&self) -> &[u8] {
        match &self.attempted {
            Attempted::Built(output) => &output.log,
            Attempted::Failed(failure) => &failure.log,
            Attempted::Needs(_) | Attempted::Probed(_) => &[],
        }
    }
}

/// How a job that stopped to ask is described where it cannot be helped (a CI job, a bootstrap
/// stage).
pub fn needs_message(requirements: &[String]) -> String {
    format!("the build backend asks for {requirements:?} at build time")
}

/// Whether a requirement a hook named applies to a cell: its markers evaluated with no extra
/// (a build requirement is never asked for with one). One that does not parse applies, so
/// that it is reported rather than silently left out.
pub fn applies(markers: &MarkerEnvironment, requirement: &str) -> bool {
    crate::names::parse_requirement(requirement)
        .map(|r| r.evaluate_markers(markers, &[]))
        .unwrap_or(true)
}

/// Run `spec` once on `backend` in the folder `placement` names. `markers` is the cell's
/// marker environment, when the caller has one: the frontend evaluates markers itself, and
/// what it could not decide is decided here, so a backend naming only requirements of other
/// interpreters or of extras builds on.
pub async fn attempt(
    backend: &dyn Backend,
    spec: &JobSpec,
    placement: &Placement,
    markers: Option<&MarkerEnvironment>,
) -> Attempt {
    let start = Instant::now();
    let began = jiff::Timestamp::now().as_second();
    let mut result = backend.run_job(spec, &placement.dir).await;
    if let (Ok(JobEnd::Asked { missing, .. }), Some(markers)) = (&result, markers)
        && !spec.probe
        && !missing.is_empty()
        && !missing.iter().any(|r| applies(markers, r))
    {
        let mut again = spec.clone();
        again.proceed = true;
        result = backend.run_job(&again, &placement.dir).await;
    }
    let attempted = match result {
        Ok(JobEnd::Wheel(output)) => {
            let _ = crate::beneath::remove_tree(&placement.dir);
            Attempted::Built(output)
        }
        Ok(JobEnd::Asked { requires, missing }) => {
            // The job runs again in a folder prepared anew: this one holds nothing to keep.
            let _ = crate::beneath::remove_tree(&placement.dir);
            if spec.probe {
                Attempted::Probed(requires)
            } else {
                let applicable = missing
                    .into_iter()
                    .filter(|r| markers.is_none_or(|m| applies(m, r)))
                    .collect();
                Attempted::Needs(applicable)
            }
        }
        Err(err) => Attempted::Failed(failure(err, &placement.dir)),
    };
    Attempt {
        attempted,
        seconds: start.elapsed().as_secs_f64(),
        window: (began, jiff::Timestamp::now().as_second()),
    }
}

/// A failed job in the store's words. A full disk fails a job with whatever it managed to
/// say (often nothing): the disk is named, and what the job wrote is removed, which would keep
/// it full for every job and run after. Other failed folders are kept for a look (0700).
fn failure(err: JobError, dir: &std::path::Path) -> Failure {
    let log = err.log().to_vec();
    if let Some(device) = crate::fsutil::out_of_space(dir) {
        let freed = match crate::beneath::remove_tree(dir) {
            Ok(()) => "the job's folder was removed to free what it wrote".to_string(),
            Err(e) => format!(
                "the job's folder {} could not be removed: {e}",
                dir.display()
            ),
        };
        return Failure {
            message: format!("{device}; {freed} (the job's own error: {err})"),
            log,
            input: false,
            out_of_space: true,
        };
    }
    let input = matches!(err, JobError::Input(_));
    Failure {
        message: err.to_string(),
        log,
        input,
        out_of_space: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pep508_rs::MarkerEnvironmentBuilder;

    /// The frontend weighs markers inside the job, with no library to hand; rewheel weighs
    /// what it could not decide with pep508_rs. Both must agree wherever the frontend decides.
    #[test]
    fn the_frontend_weighs_markers_as_pep508_rs_does() {
        let corpus = [
            r#"ruff >= 0.6.2 ; extra == "all""#,
            r#"x; python_version < "3.8""#,
            r#"x; python_version >= "3.8""#,
            r#"x; python_version == "3.11""#,
            r#"x; python_version != "3.11""#,
            r#"x; python_version >= "3.8" and sys_platform == "linux""#,
            r#"x; (os_name == "nt" or platform_system == "Linux") and extra == """#,
            r#"x; "linux" in sys_platform"#,
            r#"x; platform_machine not in "aarch64 arm64""#,
            r#"x; python_full_version < "3.9.1""#,
            r#"x; python_version ~= "3.10""#,
            r#"x; implementation_name == "cpython" and platform_python_implementation != "PyPy""#,
            r#"x; sys_platform == "win32" or sys_platform == "darwin""#,
            r#"x; os_name == "posix" and (python_version < "3" or python_version > "3.5")"#,
            r#"x; extra == "tests" or extra == "docs""#,
            r#"x; python_version<"3.14"and os_name=="posix""#,
        ];
        let script = format!(
            "{}\nimport json, sys\nenv = marker_environment()\nresults = []\nfor r in json.loads(sys.argv[1]):\n    try:\n        results.append(evaluate_marker(r.partition(';')[2].strip(), env))\n    except Unsure:\n        results.append(None)\nprint(json.dumps({{'env': env, 'results': results}}))",
            crate::build::job::FRONTEND.replace("if __name__ == \"__main__\":\n    main()", "")
        );
        let out = std::process::Command::new("python3")
            .args([
                "-S",
                "-c",
                &script,
                &serde_json::to_string(&corpus).unwrap(),
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let env = &answer["env"];
        let field = |k: &str| env[k].as_str().unwrap().to_string();
        let fields: Vec<String> = [
            "implementation_name",
            "implementation_version",
            "os_name",
            "platform_machine",
            "platform_python_implementation",
            "platform_release",
            "platform_system",
            "platform_version",
            "python_full_version",
            "python_version",
            "sys_platform",
        ]
        .iter()
        .map(|k| field(k))
        .collect();
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &fields[0],
            implementation_version: &fields[1],
            os_name: &fields[2],
            platform_machine: &fields[3],
            platform_python_implementation: &fields[4],
            platform_release: &fields[5],
            platform_system: &fields[6],
            platform_version: &fields[7],
            python_full_version: &fields[8],
            python_version: &fields[9],
            sys_platform: &fields[10],
        })
        .unwrap();
        let mut decided = 0;
        for (requirement, frontend) in corpus.iter().zip(answer["results"].as_array().unwrap()) {
            let Some(frontend) = frontend.as_bool() else {
                continue;
            };
            decided += 1;
            assert_eq!(
                frontend,
                applies(&markers, requirement),
                "{requirement}: the frontend says {frontend}"
            );
        }
        assert!(
            decided >= corpus.len() - 1,
            "the frontend decided only {decided}"
        );
    }
}
