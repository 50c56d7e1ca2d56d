//! What a run built, as release teams and verifiers read it: per wheel, an in-toto statement
//! with a SLSA v1 provenance predicate (subject: the wheel by sha256; build definition: the
//! sdist by URL and digest, the cell, the runtime, every build-environment wheel by digest,
//! the settings; run details: rewheel's version, start and end), and per cell a
//! `sha256sums.txt` that `sha256sum -c` reads.

use super::executor::FinalJob;
use super::images::DebPackage;
use crate::digest::Sha256;
use crate::fsutil::write_atomic;
use crate::ids::RunId;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of build the parameters describe (a URN: it names a schema, not a place).
pub const BUILD_TYPE: &str = "urn:rewheel:wheel-from-sdist:v1";

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The image a docker job ran in, by digest, with the Debian packages installed in it beside
/// the digest (when known): what a verifier compares with an image rebuilt from the recipe.
fn image_dependency(inputs: &Value, packages: &[DebPackage]) -> Option<Value> {
    if inputs["backend"] != "docker" {
        return None;
    }
    // `ID`, or `ID PATH` for a supplied image's interpreter (`DockerBackend::runtime`).
    let runtime = inputs["runtime"].as_str().unwrap_or_default();
    let (id, interpreter) = runtime.split_once(' ').unwrap_or((runtime, ""));
    let mut image = json!({
        "name": "image",
        "digest": { "sha256": id.trim_start_matches("sha256:") },
    });
    if !packages.is_empty() {
        image["annotations"]["debianPackages"] = json!(packages);
    }
    if !interpreter.is_empty() {
        image["annotations"]["interpreter"] = json!(interpreter);
    }
    Some(image)
}

/// The statement for one wheel of run `run_id`; `packages` are those of its cell's image.
pub fn statement(job: &FinalJob, run_id: &RunId, packages: &[DebPackage]) -> Value {
    let spec = &job.spec;
    // The fingerprint is the job's inputs as rewheel keys them: backend, runtime (image id or
    // interpreter path), interpreter version, build path.
    let inputs: Value = serde_json::from_str(&job.fingerprint).unwrap_or(Value::Null);
    let mut dependencies = vec![json!({
        "name": spec.sdist.file_name().map(|n| n.to_string_lossy().into_owned()),
        "uri": job.sdist_url,
        "digest": { "sha256": spec.sdist_sha256 },
    })];
    for wheel in &spec.env {
        dependencies.push(json!({
            "name": format!("{}=={}", wheel.name, wheel.version),
            "digest": { "sha256": wheel.sha256 },
        }));
    }
    dependencies.extend(image_dependency(&inputs, packages));
    let mut metadata = json!({
        "invocationId": format!("{run_id}/{}", spec.label()),
        "startedOn": rfc3339(job.window.0),
        "finishedOn": rfc3339(job.window.1),
    });
    if let Some(from) = &job.reused_from {
        // Not built in this run: its times are when it was taken over, and this says whose.
        metadata["reusedFromRun"] = json!(from);
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{ "name": job.filename, "digest": { "sha256": job.sha256 } }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "package": spec.name,
                    "version": spec.version,
                    "cell": spec.cell,
                    "settings": spec.settings,
                    "buildBackend": spec.backend,
                    "buildPath": job.source_parent,
                },
                "internalParameters": {
                    "backend": inputs["backend"],
                    "runtime": inputs["runtime"],
                    "interpreterVersion": inputs["interpreter_version"],
                    "bootstrapStage": spec.stage,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": format!("urn:rewheel:builder:{}", inputs["backend"].as_str().unwrap_or("none")),
                    "version": { "rewheel": env!("CARGO_PKG_VERSION") },
                },
                "metadata": metadata,
            },
        },
    })
}

/// Write every wheel's statement (`DIR/<cell>/<wheel>.intoto.json`) and each cell's
/// `sha256sums.txt`; returns the files written.
/// `to` relative to the folder `from` (both made absolute), as lock files name their wheels.
fn relative(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    for part in to.components().skip(common) {
        rel.push(part);
    }
    rel.display().to_string()
}

/// Statements, `sha256sums.txt` and a PEP 751 `pylock.<cell>.toml` per cell (naming the
/// wheels written to `out_dir/<cell>/`) in `dir`.
/// The statements and checksums of a run's final wheels in `dir`, with the message saying so.
pub fn write_for(built: &crate::build::run::BuiltRun, dir: &Path) -> anyhow::Result<String> {
    let packages: BTreeMap<String, Vec<DebPackage>> = built
        .summary
        .finals
        .iter()
        .map(|f| f.spec.cell.to_string())
        .map(|cell| {
            let listed = built.backend.image_packages(&cell);
            (cell, listed)
        })
        .collect();
    let files = write_all(
        dir,
        &built.summary.finals,
        &built.run_id,
        &built.settings.options.out_dir,
        &packages,
    )
    .map_err(|e| anyhow::anyhow!("cannot write provenance in {}: {e}", dir.display()))?;
    Ok(format!(
        "provenance: {} files in {}",
        files.len(),
        dir.display()
    ))
}

pub fn write_all(
    dir: &Path,
    finals: &[FinalJob],
    run_id: &RunId,
    out_dir: &Path,
    packages: &BTreeMap<String, Vec<DebPackage>>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut sums: BTreeMap<String, BTreeMap<String, Sha256>> = BTreeMap::new();
    for job in finals {
        let cell_dir = dir.join(job.spec.cell.as_str());
        let path = cell_dir.join(format!("{}.intoto.json", job.filename));
        let listed = packages
            .get(job.spec.cell.as_str())
            .map_or(&[][..], Vec::as_slice);
        let text = serde_json::to_string_pretty(&statement(job, run_id, listed)).expect("JSON");
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
        sums.entry(job.spec.cell.to_string())
            .or_default()
            .insert(job.filename.clone(), job.sha256.clone());
    }
    let mut cells: BTreeMap<String, Vec<&FinalJob>> = BTreeMap::new();
    for job in finals {
        cells
            .entry(job.spec.cell.to_string())
            .or_default()
            .push(job);
    }
    for (cell, jobs) in &cells {
        let lock_dir = dir.join(cell);
        let paths: Vec<String> = jobs
            .iter()
            .map(|j| relative(&lock_dir, &out_dir.join(cell).join(&j.filename)))
            .collect();
        let sizes: Vec<u64> = jobs
            .iter()
            .map(|j| std::fs::metadata(&j.path).map(|m| m.len()).unwrap_or(0))
            .collect();
        let wheels: Vec<crate::pylock::BuiltWheel> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| crate::pylock::BuiltWheel {
                name: &j.spec.name,
                version: &j.spec.version,
                filename: &j.filename,
                path: &paths[i],
                sha256: &j.sha256,
                size: sizes[i],
            })
            .collect();
        let path = lock_dir.join(format!("pylock.{cell}.toml"));
        write_atomic(&path, crate::pylock::write(&wheels, None).as_bytes())?;
        written.push(path);
    }
    for (cell, wheels) in sums {
        let text: String = wheels
            .iter()
            .map(|(name, sha)| format!("{sha}  {name}\n"))
            .collect();
        let path = dir.join(cell).join("sha256sums.txt");
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Does this statement name these bytes as its subject? `Err` says why not.
pub fn verify(statement: &Value, filename: &str, sha256: &Sha256) -> Result<(), String> {
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PREDICATE_TYPE {
        return Err("not an in-toto statement with a SLSA v1 provenance predicate".into());
    }
    let subjects = statement["subject"].as_array().cloned().unwrap_or_default();
    let subject = subjects
        .iter()
        .find(|s| s["digest"]["sha256"] == sha256.as_str())
        .ok_or_else(|| {
            format!(
                "no subject has sha256 {sha256}; the statement names {}",
                subjects
                    .iter()
                    .map(|s| format!("{} ({})", s["name"], s["digest"]["sha256"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    if subject["name"] != filename {
        return Err(format!(
            "the digest matches, but the statement names it {}, not {filename}",
            subject["name"]
        ));
    }
    Ok(())
}

/// Read a statement file and hash a wheel: `Ok(sha256)` when the wheel is its subject,
/// `Err(why)` when not.
pub fn verify_files(
    statement: &std::path::Path,
    wheel: &std::path::Path,
) -> anyhow::Result<Result<Sha256, String>> {
    use anyhow::Context;
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(statement)
            .with_context(|| format!("cannot read {}", statement.display()))?,
    )
    .with_context(|| format!("{}: not JSON", statement.display()))?;
    let sha = crate::fsutil::sha256_file(wheel)
        .with_context(|| format!("cannot read {}", wheel.display()))?;
    let name = wheel.file_name().unwrap_or_default().to_string_lossy();
    Ok(verify(&doc, &name, &sha).map(|()| sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_named_by_digest_with_its_packages_beside_it() {
        let docker = json!({ "backend": "docker", "runtime": "sha256:47b8b84c8f5e" });
        let packages = [DebPackage {
            name: "python3".into(),
            version: "3.11.2-1+b1".into(),
        }];
        let image = image_dependency(&docker, &packages).unwrap();
        assert_eq!(image["digest"]["sha256"], "47b8b84c8f5e");
        assert_eq!(
            image["annotations"]["debianPackages"],
            json!([{ "name": "python3", "version": "3.11.2-1+b1" }])
        );
        // Not listed: no annotation rather than an empty one, which would claim an empty image.
        let bare = image_dependency(&docker, &[]).unwrap();
        assert!(bare.get("annotations").is_none(), "{bare}");
        let local = json!({ "backend": "local", "runtime": "/usr/bin/python3" });
        assert!(image_dependency(&local, &packages).is_none());
        // A supplied image: its digest, and the interpreter the matrix named in it.
        let supplied = json!({
            "backend": "docker",
            "runtime": "sha256:47b8b84c8f5e /opt/python/cp311-cp311/bin/python",
        });
        let image = image_dependency(&supplied, &[]).unwrap();
        assert_eq!(image["digest"]["sha256"], "47b8b84c8f5e");
        assert_eq!(
            image["annotations"]["interpreter"],
            "/opt/python/cp311-cp311/bin/python"
        );
    }

    #[test]
    fn a_statement_verifies_its_subject_and_nothing_else() {
        let (ab, cd) = (Sha256::of(b"ab"), Sha256::of(b"cd"));
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "predicateType": PREDICATE_TYPE,
            "subject": [{ "name": "six-1.16.0-py2.py3-none-any.whl", "digest": { "sha256": ab } }],
        });
        assert!(verify(&statement, "six-1.16.0-py2.py3-none-any.whl", &ab).is_ok());
        let other = verify(&statement, "six-1.16.0-py2.py3-none-any.whl", &cd).unwrap_err();
        assert!(
            other.contains(&format!("no subject has sha256 {cd}")),
            "{other}"
        );
        let renamed = verify(&statement, "six.whl", &ab).unwrap_err();
        assert!(renamed.contains("names it"), "{renamed}");
        assert!(verify(&json!({}), "x", &ab).is_err());
    }
}
