//! The CI plan: one job per wheel and cell with what it needs, as a document a CI system can
//! schedule (GitHub Actions matrices by level, GitLab `needs:`), and the result document each
//! job leaves for the jobs after it and for `merge`.

use crate::build::job::{Recipe, Settings};
use crate::build::plan::{JobKey, Planned, Source};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Bumped on breaking changes to plan and result documents; see CHANGELOG.md.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanDoc {
    pub schema_version: u32,
    pub tool: String,
    pub jobs: Vec<PlanJob>,
    /// Job ids by level: every job of a level needs only jobs of earlier levels.
    pub levels: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub filename: String,
    pub url: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum EnvEntry {
    /// The wheel an earlier job of the plan builds.
    Job {
        job: String,
        name: String,
        version: String,
    },
    /// A wheel not built by the plan (a bootstrap seed, an `--allow-binary` wheel).
    Wheel {
        name: String,
        version: String,
        filename: String,
        url: Option<String>,
        sha256: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanJob {
    pub id: String,
    pub cell: crate::cell::CellId,
    pub python: String,
    pub image: Option<String>,
    /// The image this cell's CI jobs run in, from the matrix's `ci-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_image: Option<String>,
    pub name: String,
    pub version: String,
    pub stage: u32,
    pub level: usize,
    /// A wheel of the run (not bootstrap scaffolding).
    pub is_final: bool,
    pub sdist: Artifact,
    pub build_backend: String,
    pub backend_path: Vec<String>,
    pub build_env: Vec<EnvEntry>,
    pub needs: Vec<String>,
    pub settings: Settings,
    /// The package's own settings (`[packages.NAME]`): env, config settings, patches (with
    /// their text, so the job needs no file besides the plan), system packages.
    #[serde(default, skip_serializing_if = "Recipe::is_empty")]
    pub recipe: Recipe,
    /// Rust crates the sdist's Cargo.lock pins: fetched by the job runner before the job (which
    /// has no network), each checked against its sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crates: Vec<crate::resolve::crates::CrateRef>,
    pub timeout_secs: u64,
}

/// What one job leaves behind, beside its wheel: `<id>.result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub schema_version: u32,
    pub job: String,
    #[serde(flatten)]
    pub outcome: crate::store::JobOutcome,
    pub log_file: Option<String>,
}

/// `cp311-bookworm/six-1.16.0` (and `.stage2` for bootstrap stages).
pub fn job_id(cell: &str, name: &str, version: &str, stage: u32) -> String {
    match stage {
        0 => format!("{cell}/{name}-{version}"),
        s => format!("{cell}/{name}-{version}.stage{s}"),
    }
}

/// A job id as a file name.
pub fn file_stem(id: &str) -> String {
    id.replace('/', "__")
}

pub fn document(planned: &[Planned]) -> PlanDoc {
    let ids: HashMap<JobKey, String> = planned
        .iter()
        .map(|p| {
            (
                p.key,
                job_id(&p.spec.cell, &p.spec.name, &p.spec.version, p.key.stage),
            )
        })
        .collect();
    let by_key: HashMap<JobKey, &Planned> = planned.iter().map(|p| (p.key, p)).collect();
    // Levels by depth-first search: bootstrap stages are not listed in dependency order.
    fn level(
        k: JobKey,
        by_key: &HashMap<JobKey, &Planned>,
        memo: &mut HashMap<JobKey, usize>,
    ) -> usize {
        if let Some(&l) = memo.get(&k) {
            return l;
        }
        let l = by_key[&k]
            .deps()
            .map(|d| level(d, by_key, memo) + 1)
            .max()
            .unwrap_or(0);
        memo.insert(k, l);
        l
    }
    let mut memo = HashMap::new();
    let mut jobs: Vec<PlanJob> = planned
        .iter()
        .map(|p| {
            let build_env = p
                .env
                .iter()
                .map(|s| match s {
                    Source::Job(k) => EnvEntry::Job {
                        job: ids[k].clone(),
                        name: by_key[k].spec.name.clone(),
                        version: by_key[k].spec.version.clone(),
                    },
                    Source::File(w) => EnvEntry::Wheel {
                        name: w.name.clone(),
                        version: w.version.clone(),
                        filename: w
                            .path
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                        url: w.url.clone(),
                        sha256: w.sha256.clone(),
                    },
                })
                .collect();
            PlanJob {
                id: ids[&p.key].clone(),
                cell: p.spec.cell.clone(),
                python: p.cell.python.clone(),
                image: p.cell.image.clone(),
                ci_image: p.cell.ci_image.clone(),
                name: p.spec.name.clone(),
                version: p.spec.version.clone(),
                stage: p.key.stage,
                level: level(p.key, &by_key, &mut memo),
                is_final: p.is_final,
                sdist: Artifact {
                    filename: p
                        .spec
                        .sdist
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    url: p.sdist_url.clone(),
                    sha256: p.spec.sdist_sha256.clone(),
                },
                build_backend: p.spec.backend.clone(),
                backend_path: p.spec.backend_path.clone(),
                build_env,
                needs: p.deps().map(|d| ids[&d].clone()).collect(),
                settings: p.spec.settings.clone(),
                recipe: p.spec.recipe.clone(),
                crates: p.spec.crates.iter().map(|c| c.krate.clone()).collect(),
                timeout_secs: p.spec.timeout.as_secs(),
            }
        })
        .collect();
    jobs.sort_by(|a, b| (a.level, &a.id).cmp(&(b.level, &b.id)));
    let depth = jobs.iter().map(|j| j.level + 1).max().unwrap_or(0);
    let mut levels = vec![Vec::new(); depth];
    for j in &jobs {
        levels[j.level].push(j.id.clone());
    }
    PlanDoc {
        schema_version: SCHEMA_VERSION,
        tool: format!("rewheel {}", env!("CARGO_PKG_VERSION")),
        jobs,
        levels,
    }
}

/// GitHub Actions: matrices have no per-entry dependencies, so one `strategy.matrix` per level
/// (`include` entries), run as successive jobs.
pub fn github(plan: &PlanDoc) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = plan
        .levels
        .iter()
        .enumerate()
        .map(|(level, ids)| {
            let include: Vec<serde_json::Value> = plan
                .jobs
                .iter()
                .filter(|j| ids.contains(&j.id))
                .map(|j| serde_json::json!({ "job": j.id, "cell": j.cell, "package": j.name, "version": j.version }))
                .collect();
            serde_json::json!({ "level": level, "matrix": { "include": include } })
        })
        .collect();
    serde_json::json!({ "schema_version": SCHEMA_VERSION, "stages": stages })
}
