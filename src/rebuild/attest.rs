//! Verdicts others can check. A rebuilt wheel's statement is the in-toto statement of the job
//! that made it (sdist, build-environment wheels and image by digest, the cell, the settings)
//! with the rebuild beside it: the published wheel (name, digest, where it came from), the
//! recipe that matched or came closest, the build dependencies' cutoff, and the verdict.
//! `rewheel rebuild STATEMENT` fetches the published wheel the statement names, checks its
//! digest, builds the recipe once (no search) and says whether the bytes are the same.

use crate::build::provenance::{STATEMENT_TYPE, statement as job_statement};
use crate::rebuild::infer::Guess;
use crate::rebuild::search::{RebuildSettings, Rebuilt, obtain, rebuild_with};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::Path;

/// The kind of the rebuild record inside a statement's external parameters.
pub const REBUILD_TYPE: &str = "urn:rewheel:rebuild:v1";

/// The published wheel a statement is about, and the verdict on it.
pub struct Published<'a> {
    pub wheel: &'a str,
    pub sha256: &'a crate::digest::Sha256,
    /// A URL, or the path given.
    pub from: &'a str,
    pub verdict: &'a str,
}

/// The statement of one rebuilt wheel, or none when no attempt built.
pub fn statement(found: &Rebuilt, published: &Published) -> Option<Value> {
    let best = found.reproduced().or_else(|| found.closest())?;
    let made = best.made.as_ref()?;
    let mut s = job_statement(&made.job, &made.run_id, &made.packages);
    s["predicate"]["buildDefinition"]["externalParameters"]["rebuild"] = json!({
        "type": REBUILD_TYPE,
        "published": {
            "name": published.wheel,
            "uri": published.from,
            "digest": { "sha256": published.sha256 },
        },
        "recipe": best.guess,
        "buildDependenciesAsOf": found.exclude_newer,
        "verdict": published.verdict,
    });
    Some(s)
}

/// Write the statement as `DIR/<wheel>.rebuild.intoto.json`; the file, if one was written.
pub fn write(
    dir: &Path,
    found: &Rebuilt,
    published: &Published,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let Some(s) = statement(found, published) else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("{}.rebuild.intoto.json", published.wheel));
    crate::fsutil::write_atomic(&file, serde_json::to_string_pretty(&s)?.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(Some(file))
}

/// What checking a statement found.
pub struct Checked {
    pub wheel: String,
    pub found: Rebuilt,
    /// The statement's own claim about the published wheel.
    pub claimed: String,
}

impl Checked {
    pub fn ending(&self) -> crate::rebuild::report::Ending {
        crate::rebuild::report::ending(&self.found)
    }

    /// The rebuild's report, then the statement's claim beside what was found here.
    pub fn text(&self) -> String {
        use crate::rebuild::report::Ending;
        format!(
            "{}{}: the statement says {}; rebuilt from it here: {}\n",
            crate::rebuild::report::text(&self.found, &self.wheel),
            self.wheel,
            self.claimed,
            match self.ending() {
                Ending::Reproduced => "bit for bit, verified",
                Ending::Differs => "different bytes",
                Ending::Failed => "did not build",
            }
        )
    }
}

/// Check a statement: the published wheel it names, rebuilt with its recipe.
pub fn check(
    path: &Path,
    build: &crate::build::run::BuildSettings,
    scratch: &Path,
) -> anyhow::Result<Checked> {
    let text = crate::fsutil::read_text_capped(path, 16 << 20, "statement")
        .with_context(|| format!("cannot read {}", path.display()))?;
    let s: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON statement", path.display()))?;
    let field = |v: &Value, what: &str| -> anyhow::Result<String> {
        v.as_str().map(str::to_string).with_context(|| {
            format!(
                "{}: {what} is missing\nhint: give a statement `rebuild --attest DIR` wrote",
                path.display()
            )
        })
    };
    if s["_type"] != STATEMENT_TYPE {
        bail!(
            "{}: not an in-toto statement (its _type is {})",
            path.display(),
            s["_type"]
        );
    }
    let external = &s["predicate"]["buildDefinition"]["externalParameters"];
    let rebuild = &external["rebuild"];
    if rebuild["type"] != REBUILD_TYPE {
        bail!(
            "{}: the statement records no rebuild\nhint: give a statement `rebuild --attest DIR` wrote",
            path.display()
        );
    }
    let wheel = field(&rebuild["published"]["name"], "the published wheel's name")?;
    let uri = field(
        &rebuild["published"]["uri"],
        "where the published wheel came from",
    )?;
    let digest = crate::digest::Sha256::parse(&field(
        &rebuild["published"]["digest"]["sha256"],
        "the published wheel's sha256",
    )?)
    .with_context(|| format!("{}: the published wheel's sha256", path.display()))?;
    let guess: Guess = serde_json::from_value(rebuild["recipe"].clone())
        .with_context(|| format!("{}: the recipe", path.display()))?;
    let cutoff = match rebuild["buildDependenciesAsOf"].as_str() {
        Some(t) => Some(
            t.parse()
                .with_context(|| format!("{}: buildDependenciesAsOf `{t}`", path.display()))?,
        ),
        None => None,
    };
    let claimed = field(&rebuild["verdict"], "the verdict")?;
    // A statement is someone else's document: the build folder it names becomes a folder on
    // this host, so only one below the temporary folder is taken from it, or the one given.
    if let Some(folder) = &guess.build_path {
        let named = Path::new(folder);
        let plain = named.is_absolute()
            && named
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        let given = build.backend.build_path == named;
        if !(plain && (named.starts_with("/tmp/") || given)) {
            bail!(
                "{}: the recipe builds in {folder}, outside /tmp\nhint: if you trust the statement, give --build-path {folder} yourself",
                path.display()
            );
        }
    }

    // The published wheel, as the statement says where it is; it must be the one it names.
    std::fs::create_dir_all(scratch)?;
    let published = obtain(&uri, scratch)?;
    let got = crate::fsutil::sha256_file(&published)?;
    if got != digest {
        bail!(
            "{uri}: its sha256 is {got}, the statement names {digest}\nhint: the wheel there is not the one the statement is about"
        );
    }
    let mut build = build.clone();
    // The cell the statement's job ran in: a matrix given here is searched for it; else its
    // interpreter's X.Y on this host.
    if build.resolve.matrix.is_some() {
        build.resolve.cells = Some(field(&external["cell"], "the cell")?);
    } else if build.resolve.pythons.is_empty() {
        let version = field(
            &s["predicate"]["buildDefinition"]["internalParameters"]["interpreterVersion"],
            "the interpreter version",
        )?;
        let xy: Vec<&str> = version.split('.').take(2).collect();
        build.resolve.pythons.push(xy.join("."));
    }
    let settings = RebuildSettings {
        wheel: published,
        build,
        attempts: 1,
        scratch: scratch.to_path_buf(),
    };
    let found = rebuild_with(&settings, guess, cutoff)?;
    Ok(Checked {
        wheel,
        found,
        claimed,
    })
}
