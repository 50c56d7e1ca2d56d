//! The CI plan: one job per wheel and cell with what it needs, as a document a CI system can
//! schedule (GitHub Actions matrices by level, GitLab `needs:`), and the result document each
//! job leaves for the jobs after it and for `merge`.

use crate::build::job::{Recipe, Settings};
use crate::build::plan::{JobKey, Planned, Source};
use crate::digest::Sha256;
use crate::ids::{BadJobId, JobId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Component, Path};

/// Bumped on breaking changes to plan and result documents; see CHANGELOG.md.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanDoc {
    pub schema_version: u32,
    pub tool: String,
    pub jobs: Vec<PlanJob>,
    /// Job ids by level: every job of a level needs only jobs of earlier levels.
    pub levels: Vec<Vec<JobId>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub filename: String,
    pub url: String,
    pub sha256: Sha256,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum EnvEntry {
    /// The wheel an earlier job of the plan builds.
    Job {
        job: JobId,
        name: String,
        version: String,
    },
    /// A wheel not built by the plan (a bootstrap seed, an `--allow-binary` wheel).
    Wheel {
        name: String,
        version: String,
        filename: String,
        url: Option<String>,
        sha256: Sha256,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanJob {
    pub id: JobId,
    pub cell: crate::cell::CellId,
    pub python: String,
    pub image: Option<String>,
    /// The image this cell's CI jobs run in, from the matrix's `ci-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_image: Option<String>,
    /// The cell's supplied image (a manylinux one): its CI jobs run in it unless `ci_image`
    /// says otherwise, as its docker builds do. The job finds the cell's `pythonX.Y` on the
    /// image's PATH: a plan names no program for the CI machine to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplied_image: Option<String>,
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
    pub needs: Vec<JobId>,
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
    pub job: JobId,
    #[serde(flatten)]
    pub outcome: crate::store::JobOutcome,
    pub log_file: Option<String>,
}

/// A CI document (a plan, a job's result, a file beside them) that is not used as given. The
/// documents travel through CI artifacts and caches, written by jobs that run untrusted
/// builds: every name they give for a file is checked before anything is opened by it.
#[derive(Debug, thiserror::Error)]
#[error("{doc}: {what}\nhint: {hint}")]
pub struct DocError {
    /// The document, as the command line or the walk found it.
    pub doc: String,
    /// The field and what is wrong with its value (or with the file itself).
    pub what: String,
    pub hint: &'static str,
}

/// What to do about a plan that names a file other than by a plain name.
pub const PLAN_HINT: &str = "a plan names its files by plain names, found below --inputs: make it again with `rewheel plan`";
/// What to do about a result document or the files beside it.
pub const RESULT_HINT: &str = "a result document names only plain files beside it, below the folder given; links, devices, FIFOs and files over the limit are not read: use the folders `rewheel build --job` wrote, as CI saved them";

/// What a path-like field of a document may hold. Job ids are checked by their type (`JobId`)
/// when the document is read.
#[derive(Clone, Copy)]
enum Rule {
    /// A file name with nothing else in it: no folder, no `..`, no NUL.
    Name,
    /// A relative path of plain names (`logs/x.log`): nothing that climbs, roots or repeats.
    Path,
    /// A PEP 517 backend-path entry: relative and inside the tree (`.` allowed, as pip does).
    Tree,
}

impl Rule {
    fn admits(self, value: &str) -> bool {
        match self {
            Rule::Name => plain_name(value),
            Rule::Path => value.len() <= 4096 && value.split('/').all(plain_name),
            Rule::Tree => {
                !value.contains('\0')
                    && Path::new(value)
                        .components()
                        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            }
        }
    }

    fn wanted(self) -> &'static str {
        match self {
            Rule::Name => "a plain file name",
            Rule::Path => "a relative path of plain names",
            Rule::Tree => "a path inside the source tree",
        }
    }
}

fn plain_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value != "."
        && value != ".."
        && !value.contains(['/', '\0'])
}

/// Refuse `field` of `doc` unless `rule` admits `value`.
fn check(
    doc: &Path,
    field: impl FnOnce() -> String,
    value: &str,
    rule: Rule,
    hint: &'static str,
) -> Result<(), DocError> {
    if rule.admits(value) {
        return Ok(());
    }
    Err(DocError {
        doc: doc.display().to_string(),
        what: format!(
            "{} `{}` is not {}",
            field(),
            value.escape_debug(),
            rule.wanted()
        ),
        hint,
    })
}

impl PlanDoc {
    /// A plan from its bytes, with every file it names checked to be a plain name.
    pub fn parse(bytes: &[u8], doc: &Path) -> anyhow::Result<PlanDoc> {
        use anyhow::Context;
        let plan: PlanDoc = serde_json::from_slice(bytes)
            .with_context(|| format!("{}: not a rewheel plan", doc.display()))?;
        plan.check(doc)?;
        Ok(plan)
    }

    fn check(&self, doc: &Path) -> Result<(), DocError> {
        let hint = PLAN_HINT;
        for (i, job) in self.jobs.iter().enumerate() {
            let at = |field: &str| format!("jobs[{i}].{field}");
            let name = &job.sdist.filename;
            check(doc, || at("sdist.filename"), name, Rule::Name, hint)?;
            for (j, entry) in job.build_env.iter().enumerate() {
                if let EnvEntry::Wheel { filename, .. } = entry {
                    let field = || at(&format!("build_env[{j}].filename"));
                    check(doc, field, filename, Rule::Name, hint)?
                }
            }
            for (j, krate) in job.crates.iter().enumerate() {
                let file = crate_file(krate);
                check(doc, || at(&format!("crates[{j}]")), &file, Rule::Name, hint)?;
            }
            for (j, entry) in job.backend_path.iter().enumerate() {
                let field = || at(&format!("backend_path[{j}]"));
                check(doc, field, entry, Rule::Tree, hint)?;
            }
        }
        Ok(())
    }
}

impl JobResult {
    /// A result document from its bytes, with the files it names checked to be plain.
    pub fn parse(bytes: &[u8], doc: &Path) -> anyhow::Result<JobResult> {
        use anyhow::Context;
        let result: JobResult = serde_json::from_slice(bytes)
            .with_context(|| format!("{}: not a job result", doc.display()))?;
        result.check(doc)?;
        Ok(result)
    }

    /// Every file this document names is a plain name beside it.
    pub fn check(&self, doc: &Path) -> Result<(), DocError> {
        let hint = RESULT_HINT;
        if let Some((wheel, _)) = self.outcome.wheel() {
            check(doc, || "wheel_filename".into(), wheel, Rule::Name, hint)?;
        }
        if let Some(log) = &self.log_file {
            check(doc, || "log_file".into(), log, Rule::Path, hint)?;
        }
        Ok(())
    }
}

/// The file a vendored crate is kept as, among a job's inputs.
pub fn crate_file(krate: &crate::resolve::crates::CrateRef) -> String {
    format!("{}-{}.crate.tar.gz", krate.name, krate.version)
}

/// The plan of `planned`, refused when a job's id would not make a plain file name (a name
/// and version longer than a file name may be).
pub fn document(planned: &[Planned]) -> Result<PlanDoc, BadJobId> {
    let ids: HashMap<JobKey, JobId> = planned
        .iter()
        .map(|p| {
            let id = JobId::of(&p.spec.cell, &p.spec.name, &p.spec.version, p.key.stage)?;
            Ok((p.key, id))
        })
        .collect::<Result<_, BadJobId>>()?;
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
                supplied_image: p.cell.supplied_image.clone(),
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
    Ok(PlanDoc {
        schema_version: SCHEMA_VERSION,
        tool: format!("rewheel {}", env!("CARGO_PKG_VERSION")),
        jobs,
        levels,
    })
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

#[cfg(test)]
mod proptests {
    //! Whatever a CI document holds, parsing answers or refuses, never panics; and whatever it
    //! accepts names files only by relative, plain paths.
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// The sha256 of nothing, where a template needs one.
    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// A plan of one job, as `rewheel plan` writes it, to be spoiled field by field.
    fn plan_template() -> Value {
        json!({
            "schema_version": 1,
            "tool": "rewheel",
            "levels": [["cp311/a-1.0"]],
            "jobs": [{
                "id": "cp311/a-1.0", "cell": "cp311", "python": "3.11", "image": null,
                "name": "a", "version": "1.0", "stage": 0, "level": 0, "is_final": true,
                "sdist": { "filename": "a-1.0.tar.gz", "url": "file:///x/a-1.0.tar.gz", "sha256": SHA },
                "build_backend": "setuptools.build_meta",
                "backend_path": ["."],
                "build_env": [
                    { "from": "job", "job": "cp311/b-1.0", "name": "b", "version": "1.0" },
                    { "from": "wheel", "name": "c", "version": "1.0", "filename": "c-1.0-py3-none-any.whl", "url": null, "sha256": SHA }
                ],
                "needs": ["cp311/b-1.0"],
                "settings": serde_json::to_value(crate::build::job::Settings::default()).unwrap(),
                "crates": [{ "name": "d", "version": "1.0", "sha256": SHA }],
                "timeout_secs": 60
            }]
        })
    }

    fn result_template() -> Value {
        json!({
            "schema_version": 1, "job": "cp311/a-1.0", "cell": "cp311", "name": "a",
            "version": "1.0", "stage": 0, "status": "built",
            "wheel_filename": "a-1.0-py3-none-any.whl", "wheel_sha256": SHA,
            "fingerprint": "f", "seconds": 1.0, "error": null, "log_file": "cp311__a-1.0.log"
        })
    }

    /// Strings made of what paths are made of.
    fn pathy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just(".."),
                Just("."),
                Just("a"),
                Just("\0"),
                Just("\\"),
                Just(""),
                Just("//"),
                Just("x.whl"),
                Just("é"),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            pathy().prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every place in `value` (as JSON pointers), for replacing one.
    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                let here = format!("{at}/{k}");
                out.push(here.clone());
                pointers(v, here, out);
            }),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| {
                let here = format!("{at}/{i}");
                out.push(here.clone());
                pointers(v, here, out);
            }),
            _ => {}
        }
    }

    /// `template` with the place `pick` chooses replaced by `with`.
    fn spoiled(template: Value, pick: usize, with: Value) -> Vec<u8> {
        let mut doc = template;
        let mut places = Vec::new();
        pointers(&doc, String::new(), &mut places);
        let place = &places[pick % places.len()];
        *doc.pointer_mut(place).unwrap() = with;
        serde_json::to_vec(&doc).unwrap()
    }

    fn is_plain_name(name: &str) -> bool {
        let mut parts = Path::new(name).components();
        matches!(parts.next(), Some(Component::Normal(n)) if n == name)
            && parts.next().is_none()
            && !name.contains('\0')
    }

    fn is_plain_path(path: &str) -> bool {
        !path.contains('\0') && !path.starts_with('/') && path.split('/').all(is_plain_name)
    }

    fn assert_plain_plan(plan: &PlanDoc) {
        for job in &plan.jobs {
            assert!(is_plain_name(&job.id.file_stem()), "{:?}", job.id);
            assert!(
                is_plain_name(&job.sdist.filename),
                "{:?}",
                job.sdist.filename
            );
            for entry in &job.build_env {
                match entry {
                    EnvEntry::Job { job, .. } => assert!(is_plain_name(&job.file_stem())),
                    EnvEntry::Wheel { filename, .. } => assert!(is_plain_name(filename)),
                }
            }
            for krate in &job.crates {
                assert!(is_plain_name(&crate_file(krate)), "{krate:?}");
            }
            for entry in &job.backend_path {
                let p = Path::new(entry);
                assert!(!entry.contains('\0') && !p.has_root(), "{entry:?}");
                assert!(
                    !p.components().any(|c| c == Component::ParentDir),
                    "{entry:?}"
                );
            }
        }
    }

    fn assert_plain_result(result: &JobResult) {
        assert!(is_plain_name(&result.job.file_stem()), "{:?}", result.job);
        if let Some((wheel, _)) = result.outcome.wheel() {
            assert!(is_plain_name(wheel), "{wheel:?}");
        }
        if let Some(log) = &result.log_file {
            assert!(is_plain_path(log), "{log:?}");
        }
    }

    proptest! {
        #![proptest_config(crate::proptests::config())]

        #[test]
        fn ci_documents_of_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let doc = Path::new("doc.json");
            if let Ok(plan) = PlanDoc::parse(&bytes, doc) { assert_plain_plan(&plan) }
            if let Ok(result) = JobResult::parse(&bytes, doc) { assert_plain_result(&result) }
        }

        #[test]
        fn a_plan_accepted_names_its_files_plainly(pick in any::<usize>(), with in any_json()) {
            let bytes = spoiled(plan_template(), pick, with);
            if let Ok(plan) = PlanDoc::parse(&bytes, Path::new("plan.json")) {
                assert_plain_plan(&plan);
            }
        }

        #[test]
        fn a_plan_path_field_is_taken_only_when_plain(field in 0usize..6, value in pathy()) {
            let mut doc = plan_template();
            let job = &mut doc["jobs"][0];
            match field {
                0 => job["id"] = value.clone().into(),
                1 => job["sdist"]["filename"] = value.clone().into(),
                2 => job["build_env"][0]["job"] = value.clone().into(),
                3 => job["build_env"][1]["filename"] = value.clone().into(),
                4 => job["crates"][0]["name"] = value.clone().into(),
                _ => job["backend_path"][0] = value.clone().into(),
            }
            let parsed = PlanDoc::parse(&serde_json::to_vec(&doc).unwrap(), Path::new("plan.json"));
            match parsed {
                Ok(plan) => assert_plain_plan(&plan),
                // A refusal names the document and says what to do; a job id, checked as the
                // document is read, says what a job id must be.
                Err(err) => {
                    let text = format!("{err:#}");
                    let said = text.contains("hint:")
                        || (matches!(field, 0 | 2) && text.contains("does not make a plain file name"));
                    prop_assert!(text.contains("plan.json") && said, "{}", text);
                }
            }
        }

        #[test]
        fn a_result_accepted_names_its_files_plainly(
            pick in any::<usize>(),
            with in any_json(),
            field in 0usize..3,
            value in pathy(),
        ) {
            let bytes = spoiled(result_template(), pick, with);
            if let Ok(result) = JobResult::parse(&bytes, Path::new("r.json")) {
                assert_plain_result(&result);
            }
            let mut doc = result_template();
            doc[["job", "wheel_filename", "log_file"][field]] = value.into();
            if let Ok(result) = JobResult::parse(&serde_json::to_vec(&doc).unwrap(), Path::new("r.json")) {
                assert_plain_result(&result);
            }
        }
    }

    #[test]
    fn the_templates_parse() {
        PlanDoc::parse(
            &serde_json::to_vec(&plan_template()).unwrap(),
            Path::new("p"),
        )
        .unwrap();
        JobResult::parse(
            &serde_json::to_vec(&result_template()).unwrap(),
            Path::new("r"),
        )
        .unwrap();
    }

    #[test]
    fn a_hash_that_is_not_a_sha256_is_refused_where_the_document_is_read() {
        for place in [
            "/jobs/0/sdist/sha256",
            "/jobs/0/build_env/1/sha256",
            "/jobs/0/crates/0/sha256",
        ] {
            let mut doc = plan_template();
            *doc.pointer_mut(place).unwrap() = "../../x".into();
            let err = PlanDoc::parse(&serde_json::to_vec(&doc).unwrap(), Path::new("plan.json"))
                .unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.starts_with("plan.json: not a rewheel plan: sha256 `../../x` is not 64"),
                "{place}: {text}"
            );
        }
        let mut doc = result_template();
        doc["wheel_sha256"] = SHA.to_uppercase().into();
        let err =
            JobResult::parse(&serde_json::to_vec(&doc).unwrap(), Path::new("r.json")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("r.json: not a job result: wheel_sha256: sha256 `E3B0"),
            "{text}"
        );
    }
}
