//! The plan as CI files that run as written: a GitLab child pipeline (each job reads the
//! artifacts of the jobs it `needs` where GitLab puts them, and the plan from the parent
//! pipeline) and a complete GitHub Actions workflow (a plan job, one job per level with its
//! matrix, one artifact per plan job, a download of exactly the needed ones, a merge).

use super::plan_doc::{PlanDoc, PlanJob};
use crate::ids::JobId;
use serde_norway::{Mapping, Value};

/// How the emitted files get rewheel, images and the plan.
#[derive(Debug, Clone)]
pub struct CiOptions {
    /// The `rewheel plan` arguments that make this plan: the GitHub plan job runs them again
    /// (and `--check`s the workflow with them).
    pub plan_args: Vec<String>,
    /// The image of a cell's jobs (unless the matrix names one), with `{cell}`, `{python}` (X.Y.Z), `{python_short}` (X.Y)
    /// and `{suite}` filled in; by default `python:{python_short}-{suite}` (or
    /// `python:{python_short}` for a cell without an image).
    pub image: Option<String>,
    /// Shell lines that put rewheel on the PATH in a job, before anything else runs.
    pub setup: Vec<String>,
    /// GitLab: the parent pipeline's job that keeps `plan.json` as an artifact.
    pub plan_job: String,
    /// GitHub: where the workflow is committed (the plan job checks it is current).
    pub workflow_path: String,
}

impl Default for CiOptions {
    fn default() -> Self {
        Self {
            plan_args: Vec::new(),
            image: None,
            setup: Vec::new(),
            plan_job: "rewheel-plan".into(),
            workflow_path: ".github/workflows/rewheel.yml".into(),
        }
    }
}

impl CiOptions {
    /// A job's image: the matrix's `ci-image` for its cell, else its supplied image (what is
    /// released is built where it was tested), else the template.
    pub fn image_of(&self, job: &PlanJob) -> String {
        if let Some(image) = job.ci_image.as_ref().or(job.supplied_image.as_ref()) {
            return image.clone();
        }
        let short = job.python.split('.').take(2).collect::<Vec<_>>().join(".");
        let suite = job.image.clone().unwrap_or_default();
        let template = self.image.clone().unwrap_or_else(|| {
            if suite.is_empty() {
                "python:{python_short}".into()
            } else {
                "python:{python_short}-{suite}".into()
            }
        });
        template
            .replace("{cell}", &job.cell)
            .replace("{python_short}", &short)
            .replace("{python}", &job.python)
            .replace("{suite}", &suite)
    }
}

/// A word for `sh`: left alone when it has nothing the shell would read, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(Value::String(k.into()), v);
    }
    Value::Mapping(m)
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
    list(items.into_iter().map(|i| s(i)))
}

fn yaml(header: &str, value: &Value) -> String {
    let body = serde_norway::to_string(value).expect("CI documents serialize");
    format!("{header}{body}")
}

/// The build command of one plan job, as both systems run it.
fn build_line(job: &str, inputs: &str, out: &str) -> String {
    format!(
        "rewheel build --plan plan.json --job {} --inputs {inputs} --out {out} --backend local",
        shell_word(job)
    )
}

/// The line that installs a job's system packages (per-package `system` settings) in a CI
/// image, which runs as root in both systems' container jobs.
fn system_line(packages: &[String]) -> Option<String> {
    use crate::build::pocket::Pocket;
    // `NAME/backports` is apt's `NAME/<codename>-backports`, the image's own codename; each
    // pocket named gets its sources line first.
    const CODENAME: &str = "$(. /etc/os-release && echo $VERSION_CODENAME)";
    let mut pockets = Vec::new();
    let names: Vec<String> = packages
        .iter()
        .map(|p| match Pocket::split(p) {
            (name, Some(pocket)) => {
                pockets.push(pocket);
                format!("{name}/{}", pocket.release(CODENAME))
            }
            (_, None) => p.clone(),
        })
        .collect();
    pockets.sort();
    pockets.dedup();
    (!names.is_empty()).then(|| {
        let sources: String = pockets
            .iter()
            .map(|pocket| {
                format!(
                    "echo \"{}\" > /etc/apt/sources.list.d/{}.list && ",
                    pocket.source_line(crate::build::images::DEFAULT_MIRROR, CODENAME),
                    pocket.release("rewheel")
                )
            })
            .collect();
        format!(
            "{sources}apt-get update -qq && apt-get install -y -qq --no-install-recommends {}",
            names.join(" ")
        )
    })
}

/// GitLab's limit on `needs:` entries per job (the default of self-managed and SaaS).
const GITLAB_NEEDS_LIMIT: usize = 50;

/// A GitLab child pipeline: one job per plan job with `needs:` edges, its artifacts at
/// `out/<stem>/`, which is where the jobs after it find them (`--inputs out`); `plan.json`
/// comes from the parent pipeline's plan job; a merge job at the end.
pub fn gitlab(plan: &PlanDoc, options: &CiOptions) -> String {
    let mut root = Mapping::new();
    root.insert(s("stages"), strings(["build", "merge"]));
    if !options.setup.is_empty() {
        root.insert(
            s("default"),
            map([("before_script", strings(options.setup.clone()))]),
        );
    }
    let plan_need = map([
        ("pipeline", s("$PARENT_PIPELINE_ID")),
        ("job", s(options.plan_job.clone())),
    ]);
    for j in &plan.jobs {
        let stem = j.id.file_stem();
        let mut needs = vec![plan_need.clone()];
        needs.extend(
            j.needs
                .iter()
                .map(|n| map([("job", s(n.clone())), ("artifacts", Value::Bool(true))])),
        );
        let mut job = map([
            ("stage", s("build")),
            ("image", s(options.image_of(j))),
            ("needs", list(needs)),
            (
                "script",
                strings([build_line(&j.id, "out", &format!("out/{stem}"))]),
            ),
            (
                "artifacts",
                map([
                    ("when", s("always")),
                    ("paths", strings([format!("out/{stem}/")])),
                ]),
            ),
        ]);
        if let (Some(line), Value::Mapping(job)) = (system_line(&j.recipe.system), &mut job) {
            // A job's own before_script replaces the default one: repeat the setup first.
            let mut lines = options.setup.clone();
            lines.push(line);
            job.insert(s("before_script"), strings(lines));
        }
        root.insert(s(j.id.clone()), job);
    }
    // Within GitLab's limit the merge job needs every job (and gets their artifacts that way);
    // past it, it runs in the later stage and takes the artifacts of every earlier job, but
    // then the plan cannot come from the parent, and merge checks only what it finds.
    let mut merge = Mapping::new();
    merge.insert(s("stage"), s("merge"));
    if let Some(first) = plan.jobs.first() {
        merge.insert(s("image"), s(options.image_of(first)));
    }
    let merge_script = if plan.jobs.len() < GITLAB_NEEDS_LIMIT {
        let mut needs = vec![plan_need];
        needs.extend(
            plan.jobs
                .iter()
                .map(|j| map([("job", s(j.id.clone())), ("artifacts", Value::Bool(true))])),
        );
        merge.insert(s("needs"), list(needs));
        "rewheel merge out --plan plan.json"
    } else {
        "rewheel merge out"
    };
    merge.insert(s("when"), s("always"));
    merge.insert(s("script"), strings([merge_script]));
    root.insert(s("rewheel-merge"), Value::Mapping(merge));
    yaml(
        &format!(
            "# Generated by `rewheel plan --emit gitlab`: a child pipeline, triggered by a job that\n\
             # passes PARENT_PIPELINE_ID and runs after `{}` kept plan.json as an artifact.\n\
             # Each job's image must hold the cell's Python, a C compiler, and rewheel (or set\n\
             # --ci-setup to install it).\n",
            options.plan_job
        ),
        &Value::Mapping(root),
    )
}

/// The artifact name of a plan job's results.
pub fn artifact_name(id: &JobId) -> String {
    format!("result-{}", id.file_stem())
}

/// A `download-artifact` pattern that matches exactly these artifacts (minimatch braces).
fn pattern_of(needs: &[JobId]) -> String {
    match needs {
        [] => String::new(),
        [one] => artifact_name(one),
        many => format!(
            "result-{{{}}}",
            many.iter()
                .map(JobId::file_stem)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn checkout() -> Value {
    map([("uses", s("actions/checkout@v4"))])
}

fn run(line: impl Into<String>) -> Value {
    map([("run", s(line))])
}

/// A complete GitHub Actions workflow for this plan.
pub fn github_workflow(plan: &PlanDoc, options: &CiOptions) -> String {
    let setup: Vec<Value> = options.setup.iter().map(|l| run(l.clone())).collect();
    let plan_args = words(&options.plan_args);
    let mut plan_steps = vec![checkout()];
    plan_steps.extend(setup.clone());
    plan_steps.push(run(format!("rewheel plan {plan_args} -o plan.json")));
    plan_steps.push(run(format!(
        "rewheel plan {plan_args} --emit github-workflow --check {}",
        shell_word(&options.workflow_path)
    )));
    plan_steps.push(map([
        ("uses", s("actions/upload-artifact@v4")),
        (
            "with",
            map([("name", s("rewheel-plan")), ("path", s("plan.json"))]),
        ),
    ]));
    let mut jobs = Mapping::new();
    jobs.insert(
        s("plan"),
        map([("runs-on", s("ubuntu-latest")), ("steps", list(plan_steps))]),
    );
    let mut level_names = Vec::new();
    for (level, ids) in plan.levels.iter().enumerate() {
        let include: Vec<Value> = plan
            .jobs
            .iter()
            .filter(|j| ids.contains(&j.id))
            .map(|j| {
                let mut entry = map([
                    ("job", s(j.id.clone())),
                    ("stem", s(j.id.file_stem())),
                    ("image", s(options.image_of(j))),
                    ("needs", s(pattern_of(&j.needs))),
                ]);
                if let Value::Mapping(m) = &mut entry
                    && !j.recipe.system.is_empty()
                {
                    // The whole install line: pockets need their sources lines too.
                    m.insert(
                        s("system"),
                        s(system_line(&j.recipe.system).expect("not empty")),
                    );
                }
                entry
            })
            .collect();
        let mut steps = vec![checkout()];
        steps.extend(setup.clone());
        if plan
            .jobs
            .iter()
            .any(|j| ids.contains(&j.id) && !j.recipe.system.is_empty())
        {
            steps.push(map([
                ("if", s("matrix.system != ''")),
                ("run", s("${{ matrix.system }}")),
            ]));
        }
        steps.push(map([
            ("uses", s("actions/download-artifact@v4")),
            ("with", map([("name", s("rewheel-plan")), ("path", s("."))])),
        ]));
        steps.push(map([
            ("if", s("matrix.needs != ''")),
            ("uses", s("actions/download-artifact@v4")),
            (
                "with",
                map([("pattern", s("${{ matrix.needs }}")), ("path", s("inputs"))]),
            ),
        ]));
        steps.push(run(format!(
            "mkdir -p inputs && {}",
            build_line("${{ matrix.job }}", "inputs", "'out/${{ matrix.stem }}'")
        )));
        steps.push(map([
            ("if", s("always()")),
            ("uses", s("actions/upload-artifact@v4")),
            (
                "with",
                map([
                    ("name", s("result-${{ matrix.stem }}")),
                    ("path", s("out/${{ matrix.stem }}")),
                ]),
            ),
        ]));
        let mut needs = vec!["plan".to_string()];
        needs.extend(level_names.iter().cloned());
        let name = format!("level-{level}");
        jobs.insert(
            s(name.clone()),
            map([
                ("needs", strings(needs)),
                // Later levels run when an earlier job failed: their jobs that need it fail
                // with a clear message, the rest still build.
                ("if", s("${{ !cancelled() }}")),
                ("runs-on", s("ubuntu-latest")),
                ("container", s("${{ matrix.image }}")),
                (
                    "strategy",
                    map([
                        ("fail-fast", Value::Bool(false)),
                        ("matrix", map([("include", list(include))])),
                    ]),
                ),
                ("steps", list(steps)),
            ]),
        );
        level_names.push(name);
    }
    let mut merge_steps = vec![checkout()];
    merge_steps.extend(setup);
    merge_steps.push(map([
        ("uses", s("actions/download-artifact@v4")),
        ("with", map([("name", s("rewheel-plan")), ("path", s("."))])),
    ]));
    merge_steps.push(map([
        ("uses", s("actions/download-artifact@v4")),
        (
            "with",
            map([("pattern", s("result-*")), ("path", s("results"))]),
        ),
    ]));
    merge_steps.push(run("rewheel merge results --plan plan.json"));
    let mut needs = vec!["plan".to_string()];
    needs.extend(level_names);
    let mut merge = Mapping::new();
    merge.insert(s("needs"), strings(needs));
    merge.insert(s("if"), s("${{ !cancelled() }}"));
    merge.insert(s("runs-on"), s("ubuntu-latest"));
    if let Some(first) = plan.jobs.first() {
        merge.insert(s("container"), s(options.image_of(first)));
    }
    merge.insert(s("steps"), list(merge_steps));
    jobs.insert(s("merge"), Value::Mapping(merge));
    let root = map([
        ("name", s("rewheel")),
        (
            "on",
            map([("push", Value::Null), ("workflow_dispatch", Value::Null)]),
        ),
        ("jobs", Value::Mapping(jobs)),
    ]);
    yaml(
        &format!(
            "# Generated by `rewheel plan {plan_args} --emit github-workflow`; the plan job fails\n\
             # when this file no longer matches the lock: regenerate it then.\n"
        ),
        &root,
    )
}

/// What `--check FILE` says when a committed CI file is not what the plan gives now.
pub fn stale(committed: &str, current: &str) -> Option<String> {
    if committed == current {
        return None;
    }
    let levels = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("  level-") && l.ends_with(':'))
            .count()
    };
    let (before, now) = (levels(committed), levels(current));
    let first = committed
        .lines()
        .zip(current.lines())
        .position(|(a, b)| a != b)
        .map(|i| i + 1)
        .unwrap_or(committed.lines().count().min(current.lines().count()) + 1);
    let mut why = format!("it differs from what the plan gives now from line {first}");
    if before != now {
        why = format!("the plan now has {now} levels, the file {before}; {why}");
    }
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_the_shell() {
        assert_eq!(shell_word("cp311/six-1.16.0"), "cp311/six-1.16.0");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn patterns_match_exactly_the_needed_artifacts() {
        let id = |id: &str| JobId::parse(id).unwrap();
        assert_eq!(pattern_of(&[]), "");
        assert_eq!(pattern_of(&[id("cp311/a-1")]), "result-cp311__a-1");
        assert_eq!(
            pattern_of(&[id("cp311/a-1"), id("cp311/b-2")]),
            "result-{cp311__a-1,cp311__b-2}"
        );
    }

    fn job(cell: &str, python: &str, image: Option<&str>, ci_image: Option<&str>) -> PlanJob {
        let mut doc = serde_json::json!({
            "id": format!("{cell}/six-1.16.0"), "cell": cell, "python": python, "image": image,
            "name": "six", "version": "1.16.0", "stage": 0, "level": 0, "is_final": true,
            "sdist": { "filename": "six-1.16.0.tar.gz", "url": "file:///x", "sha256": "0".repeat(64) },
            "build_backend": "setuptools.build_meta", "backend_path": [], "build_env": [],
            "needs": [], "timeout_secs": 60,
            "settings": serde_json::to_value(crate::build::job::Settings::default()).unwrap(),
        });
        if let Some(ci) = ci_image {
            doc["ci_image"] = ci.into();
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn a_job_image_comes_from_the_matrix_then_the_template_then_the_default() {
        let mut options = CiOptions::default();
        let bookworm = job("cp311-bookworm", "3.11.2", Some("bookworm"), None);
        assert_eq!(options.image_of(&bookworm), "python:3.11-bookworm");
        assert_eq!(
            options.image_of(&job("cp37", "3.7.0", None, None)),
            "python:3.7"
        );
        let mut manylinux = job("cp311-manylinux", "3.11.9", None, None);
        manylinux.supplied_image = Some("my/manylinux_2_28:1".into());
        assert_eq!(options.image_of(&manylinux), "my/manylinux_2_28:1");
        options.image = Some("ci/{cell}:{python}".into());
        assert_eq!(options.image_of(&bookworm), "ci/cp311-bookworm:3.11.2");
        let named = job("cp311-bookworm", "3.11.2", Some("bookworm"), Some("mine:1"));
        assert_eq!(options.image_of(&named), "mine:1");
    }

    #[test]
    fn a_job_with_system_packages_installs_them_in_both_systems() {
        let mut with = job("cp311-bookworm", "3.11.2", Some("bookworm"), None);
        with.recipe.system = vec!["libffi-dev".into(), "pkg-config".into()];
        let plain = job("cp311-bookworm", "3.11.2", Some("bookworm"), None);
        let doc = |jobs: Vec<PlanJob>| PlanDoc {
            schema_version: 1,
            tool: "t".into(),
            levels: vec![jobs.iter().map(|j| j.id.clone()).collect()],
            jobs,
        };
        let options = CiOptions {
            setup: vec!["pip install rewheel".into()],
            ..CiOptions::default()
        };
        let line = "apt-get update -qq && apt-get install -y -qq --no-install-recommends";
        let gl = gitlab(&doc(vec![with.clone()]), &options);
        assert!(
            gl.contains(&format!("- {line} libffi-dev pkg-config")),
            "{gl}"
        );
        assert!(
            gl.contains("  before_script:\n  - pip install rewheel\n  - apt-get"),
            "{gl}"
        );
        let gh = github_workflow(&doc(vec![with.clone()]), &options);
        assert!(
            gh.contains(&format!("system: {line} libffi-dev pkg-config")),
            "{gh}"
        );
        assert!(gh.contains("run: ${{ matrix.system }}"), "{gh}");
        // A pocket's package comes with the pocket's sources line, in both systems.
        with.recipe.system = vec!["rustc-web/security".into(), "cargo/backports".into()];
        let codename = "$(. /etc/os-release && echo $VERSION_CODENAME)";
        for text in [
            gitlab(&doc(vec![with.clone()]), &options),
            github_workflow(&doc(vec![with.clone()]), &options),
        ] {
            assert!(
                text.contains(&format!(
                    "deb http://deb.debian.org/debian-security {codename}-security main"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "deb http://deb.debian.org/debian {codename}-backports main"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "rustc-web/{codename}-security cargo/{codename}-backports"
                )),
                "{text}"
            );
        }
        // Nothing of it where no package names one.
        let plain_gl = gitlab(&doc(vec![plain.clone()]), &options);
        assert!(!plain_gl.contains("apt-get"), "{plain_gl}");
        assert!(!github_workflow(&doc(vec![plain]), &options).contains("apt-get"));
    }

    #[test]
    fn a_new_level_makes_the_check_say_so() {
        let old = "jobs:\n  level-0:\n    x: 1\n";
        let new = "jobs:\n  level-0:\n    x: 1\n  level-1:\n    x: 2\n";
        assert!(stale(old, old).is_none());
        let why = stale(old, new).unwrap();
        assert!(why.contains("now has 2 levels, the file 1"), "{why}");
    }
}
