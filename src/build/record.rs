//! A run's settings as the store keeps them beside its command line: a versioned JSON
//! document that `--resume` reads back with no command line parser, so a stored run resumes
//! as it was asked, whatever the flags of the rewheel that resumes it. The command line is
//! kept too, for people (`runs show`).
//!
//! Each stage reads its own part: `build` the build a run asked for, `verify::check_run` the
//! `check` part of a check, which this stage keeps as it is.

use super::run::{BuildSettings, RunRef, Stage, build};
use crate::ids::RunId;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The document's shape. A change that an older document does not read as it was meant
/// takes the next number; a field added with a default does not.
pub const SCHEMA_VERSION: u32 = 1;

/// What a command does with its run's wheels besides building them: given again on a
/// resuming command line, each replaces the stored one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outputs {
    /// `--expect FILE`: the hashes the wheels must have.
    pub expect: Option<PathBuf>,
    /// `--provenance DIR`: where statements and checksums go.
    pub provenance: Option<PathBuf>,
}

impl Outputs {
    /// These outputs, with those given again in `later` in place of their own.
    pub fn replaced_by(self, later: Outputs) -> Outputs {
        Outputs {
            expect: later.expect.or(self.expect),
            provenance: later.provenance.or(self.provenance),
        }
    }
}

/// A build as it was asked: the run's settings and its outputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRequest {
    pub build: BuildSettings,
    pub outputs: Outputs,
}

/// What a run was asked to do, by the command that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum RunSettings {
    /// `build`, and each attempt of `rebuild`.
    Build(BuildRequest),
    /// `check`: its first build, and the check stage's own settings (`verify` reads them).
    Check {
        first: BuildRequest,
        check: serde_json::Value,
    },
    /// The second build of `check --independent`: a part of that check, built again when
    /// the check resumes, not a run of its own.
    SecondSide { of: RunId },
}

/// Why a stored run is not resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "run {id} was recorded by an older rewheel, which kept only its command line: it cannot be resumed\nhint: run `{command}` again: the jobs it finished come from the job cache, not built again"
    )]
    CommandLineOnly { id: RunId, command: String },
    #[error(
        "run {id} has no settings to resume from (it was recorded as `{command}`)\nhint: runs of `build` and `check` resume"
    )]
    NotResumable { id: RunId, command: String },
    #[error(
        "run {id} was recorded by a newer rewheel (settings schema {found}; this one reads {SCHEMA_VERSION})\nhint: resume it with that rewheel, or run `{command}` again"
    )]
    Newer {
        id: RunId,
        found: u32,
        command: String,
    },
    #[error(
        "run {id}: its stored settings cannot be read ({why})\nhint: run `{command}` again: the jobs it finished come from the job cache, not built again"
    )]
    Unreadable {
        id: RunId,
        why: String,
        command: String,
    },
    #[error(
        "run {id} was a {was}, not a {wanted}\nhint: `rewheel {was} --resume {id}` continues it"
    )]
    OtherCommand {
        id: RunId,
        was: &'static str,
        wanted: &'static str,
    },
    #[error(
        "run {id} is the second build of check run {of}, not a run of its own\nhint: `rewheel check --resume {of}` builds that side again"
    )]
    SecondSide { id: RunId, of: RunId },
}

/// A stored run's settings, as its stage reads them.
pub struct Stored {
    pub id: RunId,
    pub settings: RunSettings,
    /// The run's command line as one shell line, for messages.
    pub command: String,
    /// The command line as it was given, word by word: what a suggested next command edits.
    pub argv: Vec<String>,
}

impl Stored {
    /// Read the settings run `id` of the store at `store_root` was recorded with; the runs
    /// they describe use that store, wherever it was when they started.
    pub fn read(store_root: &Path, id: &RunId) -> anyhow::Result<Stored> {
        let store = Store::open(store_root)?;
        let run = store
            .run(id)?
            .ok_or_else(|| StoreError::NoRun(id.clone()))?;
        let command = match run.argv.split_first() {
            Some((_, args)) if !args.is_empty() => format!("rewheel {}", args.join(" ")),
            _ => run.argv.join(" "),
        };
        let id = id.clone();
        let Some(text) = run.settings else {
            return Err(match run.argv.get(1).map(String::as_str) {
                Some("build" | "check") => ResumeError::CommandLineOnly { id, command },
                _ => ResumeError::NotResumable { id, command },
            }
            .into());
        };
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let unreadable = |err: serde_json::Error| ResumeError::Unreadable {
            id: id.clone(),
            why: err.to_string(),
            command: command.clone(),
        };
        let found = serde_json::from_str::<Version>(&text)
            .map_err(unreadable)?
            .schema_version;
        if found > SCHEMA_VERSION {
            return Err(ResumeError::Newer { id, found, command }.into());
        }
        let mut settings: RunSettings = serde_json::from_str(&text).map_err(unreadable)?;
        if let RunSettings::Build(request) | RunSettings::Check { first: request, .. } =
            &mut settings
        {
            request.build.store_root = store_root.to_path_buf();
        }
        Ok(Stored {
            id,
            settings,
            command,
            argv: run.argv,
        })
    }

    /// The build to resume: a build's own, or the first build of a check (what `build
    /// --resume` of a check builds).
    pub fn build(self) -> Result<BuildRequest, ResumeError> {
        match self.settings {
            RunSettings::Build(request) | RunSettings::Check { first: request, .. } => Ok(request),
            RunSettings::SecondSide { of } => Err(ResumeError::SecondSide { id: self.id, of }),
        }
    }

    /// A stored part of the document that does not read as its stage expects.
    pub fn unreadable(&self, err: serde_json::Error) -> ResumeError {
        ResumeError::Unreadable {
            id: self.id.clone(),
            why: err.to_string(),
            command: self.command.clone(),
        }
    }
}

impl RunSettings {
    /// The document the store keeps, its paths made absolute: a run resumed from another
    /// folder reads the files it was given.
    pub fn document(&self) -> String {
        let mut settings = self.clone();
        if let RunSettings::Build(request) | RunSettings::Check { first: request, .. } =
            &mut settings
        {
            request.anchor();
        }
        let mut doc = serde_json::to_value(&settings).expect("settings are plain data");
        doc["schema_version"] = SCHEMA_VERSION.into();
        doc.to_string()
    }
}

impl BuildRequest {
    /// Every path made absolute, against the working folder.
    fn anchor(&mut self) {
        let BuildSettings {
            resolve,
            backend,
            options,
            ..
        } = &mut self.build;
        let paths = resolve
            .requirement_files
            .iter_mut()
            .chain(&mut resolve.constraint_files)
            .chain(&mut resolve.build_constraint_files)
            .chain(&mut resolve.settings_files)
            .chain(&mut resolve.matrix)
            .chain(&mut resolve.index.find_links)
            .chain([&mut resolve.index.cache_dir])
            .chain(&mut backend.python_paths)
            .chain([&mut backend.build_path, &mut backend.image_scratch])
            .chain([&mut options.out_dir])
            .chain(&mut options.seed_dir)
            .chain(&mut self.outputs.expect)
            .chain(&mut self.outputs.provenance);
        paths.for_each(anchor);
    }
}

/// How a stranded run `id` continues, for `runs verify`: the command that made it, resumed.
pub fn resume_hint(store_root: &Path, id: &RunId) -> String {
    match Stored::read(store_root, id).map(|stored| stored.settings) {
        Ok(RunSettings::Build(_)) => format!("`rewheel build --resume {id}` continues it"),
        Ok(RunSettings::Check { .. }) => format!("`rewheel check --resume {id}` continues it"),
        Ok(RunSettings::SecondSide { of }) => {
            format!("it is a side of check {of}: `rewheel check --resume {of}` builds it again")
        }
        Err(_) => "it cannot be resumed: run its command again (`runs show` has it); the jobs it finished come from the job cache".to_string(),
    }
}

/// `path` made absolute against the working folder (left as it is if there is none).
pub fn anchor(path: &mut PathBuf) {
    if let Ok(absolute) = std::path::absolute(&*path) {
        *path = absolute;
    }
}

/// `build` as a stage: a new run of `request`, or a stored run resumed with the settings it
/// was recorded with (its outputs replaced by those given again). Returns the request the run
/// follows, with how it stopped.
pub fn start(
    begin: Begin<BuildRequest>,
    on_run: impl FnOnce(&RunId),
) -> anyhow::Result<(BuildRequest, Stage)> {
    let (request, run) = match begin {
        Begin::New { argv, request } => {
            let settings = RunSettings::Build(request.clone());
            (
                request,
                RunRef::New {
                    argv,
                    document: settings.document(),
                },
            )
        }
        Begin::Resume {
            store_root,
            id,
            outputs,
        } => {
            let mut request = Stored::read(&store_root, &id)?.build()?;
            request.outputs = request.outputs.replaced_by(outputs);
            (request, RunRef::Resume(id))
        }
    };
    let stage = build(request.build.clone(), run, on_run)?;
    Ok((request, stage))
}

/// Which run a command works on.
pub enum Begin<T> {
    /// A new run of `request`, recorded with the command line that asked for it.
    New { argv: Vec<String>, request: T },
    /// A stored run continued with its own settings; `outputs` given again replace its own.
    Resume {
        store_root: PathBuf,
        id: RunId,
        outputs: Outputs,
    },
}

/// A new run for the second build of check `of`, recorded as a part of that check.
pub fn new_second_side(store: &Store, of: &RunId) -> Result<RunId, StoreError> {
    let settings = RunSettings::SecondSide { of: of.clone() };
    store.new_run_with(
        &[format!("check {of}: independent second build")],
        Some(&settings.document()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::backend::{BackendKind, BackendRequest};
    use crate::build::plan::{BuildOptions, Rebuild};
    use crate::resolve::archive::Limits;
    use crate::resolve::session::{IndexSettings, ResolveSettings};

    fn request() -> BuildRequest {
        BuildRequest {
            build: BuildSettings {
                resolve: ResolveSettings {
                    specs: vec!["six==1.16.0".into()],
                    requirement_files: vec!["lock.txt".into()],
                    constraint_files: vec![],
                    build_constraint_files: vec![],
                    pythons: vec!["3.11".into()],
                    matrix: None,
                    cells: None,
                    index: IndexSettings {
                        index_url: None,
                        no_index: true,
                        find_links: vec!["/wheels".into()],
                        cache_dir: "/cache".into(),
                        offline: false,
                        attempts: 4,
                        exclude_newer: Some("2022-07-15T00:00:00Z".parse().unwrap()),
                        limits: Limits::default(),
                        max_page: 1 << 20,
                    },
                    allow_binary: ["wheel".parse().unwrap()].into(),
                    bootstrap: vec![("setuptools".into(), "setuptools".parse().unwrap())],
                    settings_files: vec![],
                    no_deps: false,
                },
                backend: BackendRequest {
                    kind: BackendKind::Local,
                    build_path: "/build".into(),
                    python_paths: vec![],
                    image_scratch: "/scratch".into(),
                },
                options: BuildOptions {
                    jobs: 2,
                    rebuild: Rebuild::Packages(["six".parse().unwrap()].into()),
                    out_dir: "wheelhouse".into(),
                    settings: Default::default(),
                    timeout: std::time::Duration::from_secs(1800),
                    seed_dir: None,
                    limits: Limits::default(),
                },
                store_root: "/elsewhere".into(),
            },
            outputs: Outputs {
                expect: Some("expect.txt".into()),
                provenance: None,
            },
        }
    }

    fn stored(document: Option<&str>, argv: &[&str]) -> (tempfile::TempDir, RunId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let id = store.new_run_with(&argv, document).unwrap();
        (dir, id)
    }

    #[test]
    fn a_build_reads_back_as_it_was_asked_its_paths_made_absolute() {
        let document = RunSettings::Build(request()).document();
        let (dir, id) = stored(Some(&document), &["rewheel", "build", "six==1.16.0"]);
        let back = Stored::read(dir.path(), &id).unwrap().build().unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            back.build.resolve.requirement_files,
            [here.join("lock.txt")]
        );
        assert_eq!(back.build.options.out_dir, here.join("wheelhouse"));
        assert_eq!(back.outputs.expect, Some(here.join("expect.txt")));
        assert_eq!(
            back.build.resolve.index.find_links,
            [PathBuf::from("/wheels")]
        );
        assert_eq!(
            back.build.options.rebuild,
            Rebuild::Packages(["six".parse().unwrap()].into())
        );
        assert_eq!(
            back.build.resolve.index.exclude_newer,
            request().build.resolve.index.exclude_newer
        );
        // The store it was found in, not one the document names.
        assert_eq!(back.build.store_root, dir.path());
    }

    /// A document as schema 1 wrote it reads back: a field added later needs a default, or
    /// the schema its next number.
    #[test]
    fn a_document_of_schema_1_still_reads() {
        let document = r#"{"schema_version":1,"command":"check","first":{"build":{
            "resolve":{"specs":["six==1.16.0"],"requirement_files":[],"constraint_files":[],
              "build_constraint_files":[],"pythons":["3.11"],"matrix":null,"cells":null,
              "index":{"index_url":null,"no_index":true,"find_links":["/wheels"],
                "cache_dir":"/cache","offline":false,"attempts":4,"exclude_newer":null,
                "limits":{"max_unpacked":1073741824,"max_entries":200000},"max_page":1048576},
              "allow_binary":[],"bootstrap":[["setuptools","setuptools"]],"settings_files":[]},
            "backend":{"kind":"local","build_path":"/build","python_paths":[],
              "image_scratch":"/scratch"},
            "options":{"jobs":2,"rebuild":"all","out_dir":"/out","settings":{},
              "timeout":{"secs":1800,"nanos":0},"seed_dir":null,
              "limits":{"max_unpacked":1073741824,"max_entries":200000}}},
          "outputs":{"expect":null,"provenance":null}},
          "check":{"vary":["umask"],"independent":true,"find_culprit":false,"remedies":false,
            "remedies_file":null}}"#;
        let (dir, id) = stored(Some(document), &["rewheel", "check", "six==1.16.0"]);
        let stored = Stored::read(dir.path(), &id).unwrap();
        let RunSettings::Check { check, .. } = &stored.settings else {
            panic!("{:?}", stored.settings)
        };
        assert_eq!(check["vary"][0], "umask");
        let first = stored.build().unwrap();
        assert_eq!(first.build.options.rebuild, Rebuild::All);
        assert_eq!(first.build.options.settings.umask, 0o022);
    }

    #[test]
    fn a_run_with_only_its_command_line_says_how_to_go_on() {
        let (dir, id) = stored(None, &["/usr/bin/rewheel", "build", "six==1.16.0"]);
        let err = Stored::read(dir.path(), &id).err().unwrap().to_string();
        assert!(err.contains("older rewheel"), "{err}");
        assert!(
            err.contains("hint: run `rewheel build six==1.16.0` again"),
            "{err}"
        );
        let (dir, id) = stored(None, &["rewheel", "merge", "results"]);
        let err = Stored::read(dir.path(), &id).err().unwrap().to_string();
        assert!(err.contains("no settings to resume from"), "{err}");
    }

    #[test]
    fn a_newer_or_damaged_document_is_refused_with_a_hint() {
        let (dir, id) = stored(
            Some(r#"{"schema_version":2,"command":"build"}"#),
            &["rewheel", "build", "x"],
        );
        let err = Stored::read(dir.path(), &id).err().unwrap().to_string();
        assert!(err.contains("newer rewheel (settings schema 2"), "{err}");
        let (dir, id) = stored(
            Some(r#"{"schema_version":1,"command":"build"}"#),
            &["rewheel", "build", "x"],
        );
        let err = Stored::read(dir.path(), &id).err().unwrap().to_string();
        assert!(
            err.contains("cannot be read") && err.contains("hint:"),
            "{err}"
        );
    }

    #[test]
    fn the_second_side_of_a_check_points_to_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let of = RunId::parse("20260101-000000").unwrap();
        let id = new_second_side(&store, &of).unwrap();
        let err = Stored::read(dir.path(), &id)
            .unwrap()
            .build()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("hint: `rewheel check --resume 20260101-000000`"),
            "{err}"
        );
    }
}
