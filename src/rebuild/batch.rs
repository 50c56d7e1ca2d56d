//! Many published wheels rebuilt as one batch (`rebuild FILE` with a requirements file or lock
//! naming them by hash): independent wheels side by side (`--parallel`), each with its own
//! search, report and recipe file; each wheel's verdict kept in the store as it ends, so a
//! killed batch goes on where it stopped; a summary table and the rates at the end, by backend
//! family and by year, bit for bit and equal once entry times are set aside (what OSS Rebuild
//! counts), as text, JSON and HTML.

use crate::build::run::BuildSettings;
use crate::digest::Sha256;
use crate::rebuild::report::{Ending, ending, text};
use crate::rebuild::search::{
    Outcome, RebuildSettings, Rebuilt, describe, python_of, rebuild, write_recipe,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The batch report's JSON schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// Where a wheel's verdict is kept in the store, by the published wheel's sha256.
const VERDICTS: &str = "rebuild-verdicts";

/// How one wheel ended, as the batch keeps and reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub wheel: String,
    pub sha256: Sha256,
    pub name: String,
    pub version: String,
    /// `Generator:` of its WHEEL file.
    pub generator: Option<String>,
    /// setuptools, flit-core, hatchling, poetry-core, pdm-backend or other.
    pub family: String,
    /// The year it was uploaded, where the index says.
    pub year: Option<i16>,
    /// `identical`, `same-content` (equal once entry times are set aside), `differs` or
    /// `failed`.
    pub verdict: String,
    /// The recipe that matched, or came closest.
    pub recipe: Option<String>,
    /// What differs, or why no attempt built.
    pub cause: Option<String>,
    pub attempts: usize,
    pub seconds: f64,
}

impl Verdict {
    fn identical(&self) -> bool {
        self.verdict == "identical"
    }

    fn same_content(&self) -> bool {
        self.identical() || self.verdict == "same-content"
    }

    pub fn ending(&self) -> Ending {
        match self.verdict.as_str() {
            "identical" => Ending::Reproduced,
            "failed" => Ending::Failed,
            _ => Ending::Differs,
        }
    }
}

/// The backend family a `Generator:` names.
fn family(generator: Option<&str>) -> &'static str {
    let g = generator.unwrap_or_default().to_ascii_lowercase();
    [
        ("bdist_wheel", "setuptools"),
        ("setuptools", "setuptools"),
        ("flit", "flit-core"),
        ("hatch", "hatchling"),
        ("poetry", "poetry-core"),
        ("pdm", "pdm-backend"),
    ]
    .iter()
    .find(|(prefix, _)| g.starts_with(prefix))
    .map_or("other", |(_, f)| f)
}

fn verdict_of(found: &Rebuilt, wheel: &Path, sha256: Sha256, seconds: f64) -> Verdict {
    use crate::verify::wheel_diff::Verdict as Diff;
    let cutoff = found.exclude_newer.as_ref();
    let best = found.reproduced().or_else(|| found.closest());
    let (verdict, cause) = match best.map(|a| &a.outcome) {
        Some(Outcome::Identical) => ("identical", None),
        Some(Outcome::Differs(pair)) => (
            match pair.verdict {
                Diff::SameContent { .. } => "same-content",
                _ => "differs",
            },
            Some(crate::verify::report::verdict_line(pair)),
        ),
        _ => (
            "failed",
            found.attempts.iter().find_map(|a| match &a.outcome {
                Outcome::Failed(why) => Some(why.lines().next().unwrap_or_default().to_string()),
                _ => None,
            }),
        ),
    };
    // A repaired wheel cannot come out of a Debian cell as it was published: say why first.
    let cause = match (verdict, found.observed.repaired()) {
        ("identical", _) | (_, None) => cause,
        (_, Some(repaired)) => Some(repaired),
    };
    Verdict {
        wheel: wheel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        sha256,
        name: found.observed.name.clone(),
        version: found.observed.version.clone(),
        generator: found.observed.generator.clone(),
        family: family(found.observed.generator.as_deref()).to_string(),
        year: cutoff.map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).year()),
        verdict: verdict.to_string(),
        recipe: best.map(|a| describe(&a.guess, cutoff)),
        cause,
        attempts: found.attempts.len(),
        seconds,
    }
}

/// What the batch was asked.
pub struct Batch<'a> {
    /// Each published wheel on this host, and where it came from (a URL or the path given).
    pub wheels: &'a [(PathBuf, String)],
    pub build: &'a BuildSettings,
    pub attempts: usize,
    pub scratch: &'a Path,
    /// The first wheel's recipe file; the next ones get `FILE.2.toml`, `FILE.3.toml`, …
    pub recipe: Option<&'a Path>,
    /// Wheels rebuilt at once.
    pub parallel: usize,
    /// Rebuild wheels an earlier batch already has a verdict for.
    pub again: bool,
    /// Write each wheel's rebuild statement here (`attest`).
    pub attest: Option<&'a Path>,
}

/// Rebuild each wheel; `print` hears each wheel's report as it is ready, and the summary.
pub fn rebuild_all(batch: &Batch, print: impl Fn(&str) + Sync) -> anyhow::Result<Vec<Verdict>> {
    let kept = batch.build.store_root.join(VERDICTS);
    std::fs::create_dir_all(&kept)?;
    let next = Mutex::new(0usize);
    let verdicts: Mutex<Vec<(usize, Verdict)>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let parallel = batch.parallel.clamp(1, batch.wheels.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let n = {
                        let mut next = next.lock().expect("batch lock");
                        if failure.lock().expect("batch lock").is_some()
                            || *next >= batch.wheels.len()
                        {
                            return;
                        }
                        *next += 1;
                        *next - 1
                    };
                    match one(batch, n, parallel, &kept, &print) {
                        Ok(v) => verdicts.lock().expect("batch lock").push((n, v)),
                        Err(err) => {
                            *failure.lock().expect("batch lock") = Some(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = failure.into_inner().expect("batch lock") {
        return Err(err);
    }
    let mut verdicts = verdicts.into_inner().expect("batch lock");
    verdicts.sort_by_key(|(n, _)| *n);
    let verdicts: Vec<Verdict> = verdicts.into_iter().map(|(_, v)| v).collect();
    if verdicts.len() > 1 {
        print(&summary(&verdicts));
    }
    Ok(verdicts)
}

/// One wheel of the batch: its kept verdict, or a rebuild.
fn one(
    batch: &Batch,
    n: usize,
    parallel: usize,
    kept: &Path,
    print: &(impl Fn(&str) + Sync),
) -> anyhow::Result<Verdict> {
    let (wheel, source) = &batch.wheels[n];
    let sha256 = crate::fsutil::sha256_file(wheel)?;
    // Kept by the wheel and what the batch was asked: other settings are another rebuild.
    let asked = serde_json::to_string(&(batch.build, batch.attempts))?;
    let key = Sha256::of(format!("{sha256} {asked}").as_bytes());
    let record = kept.join(format!("{key}.json"));
    // A batch goes on where it stopped; one wheel asked for alone is rebuilt.
    if !batch.again
        && batch.wheels.len() > 1
        && let Ok(text) = std::fs::read_to_string(&record)
        && let Ok(v) = serde_json::from_str::<Verdict>(&text)
    {
        print(&format!(
            "{}: {} (kept from an earlier batch; --rebuild to do it again)\n",
            v.wheel, v.verdict
        ));
        return Ok(v);
    }
    let mut build = batch.build.clone();
    if build.resolve.pythons.is_empty() && build.resolve.matrix.is_none() {
        build.resolve.pythons.push(python_of(wheel)?);
    }
    // The slots of -j are shared by the wheels rebuilt at once.
    build.options.jobs = (build.options.jobs / parallel).max(1);
    let settings = RebuildSettings {
        wheel: wheel.clone(),
        build,
        attempts: batch.attempts,
        scratch: batch.scratch.join(n.to_string()),
    };
    let started = std::time::Instant::now();
    let found = rebuild(&settings)?;
    let name = wheel.file_name().unwrap_or_default().to_string_lossy();
    let mut out = text(&found, &name);
    if let Some(file) = batch.recipe {
        let file = match n {
            0 => file.to_path_buf(),
            n => file.with_extension(format!("{}.toml", n + 1)),
        };
        if write_recipe(&found, &settings.build, &file)? {
            out.push_str(&format!("recipe written to {}\n", file.display()));
        }
    }
    let v = verdict_of(&found, wheel, sha256, started.elapsed().as_secs_f64());
    let published = crate::rebuild::attest::Published {
        wheel: &v.wheel,
        sha256: &v.sha256,
        from: source,
        verdict: &v.verdict,
    };
    if let Some(dir) = batch.attest
        && let Some(file) = crate::rebuild::attest::write(dir, &found, &published)?
    {
        out.push_str(&format!("statement written to {}\n", file.display()));
    }
    debug_assert_eq!(v.ending(), ending(&found));
    crate::fsutil::write_atomic(&record, serde_json::to_string_pretty(&v)?.as_bytes())?;
    print(&out);
    Ok(v)
}

/// Counts over some verdicts: bit for bit, and equal once entry times are set aside.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Rate {
    pub wheels: usize,
    pub identical: usize,
    pub same_content: usize,
}

impl Rate {
    fn of<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Self {
        let mut rate = Rate::default();
        for v in verdicts {
            rate.wheels += 1;
            rate.identical += usize::from(v.identical());
            rate.same_content += usize::from(v.same_content());
        }
        rate
    }

    fn line(&self) -> String {
        format!(
            "{}/{} bit for bit, {}/{} equal after normalising entry times",
            self.identical, self.wheels, self.same_content, self.wheels
        )
    }
}

/// The batch report: every verdict and the rates.
#[derive(Debug, Serialize)]
pub struct BatchReport<'a> {
    pub schema_version: u32,
    pub tool: String,
    pub all: Rate,
    pub by_family: BTreeMap<&'a str, Rate>,
    pub by_year: BTreeMap<String, Rate>,
    pub wheels: &'a [Verdict],
}

pub fn report(verdicts: &[Verdict]) -> BatchReport<'_> {
    let mut by_family: BTreeMap<&str, Vec<&Verdict>> = BTreeMap::new();
    let mut by_year: BTreeMap<String, Vec<&Verdict>> = BTreeMap::new();
    for v in verdicts {
        by_family.entry(v.family.as_str()).or_default().push(v);
        let year = v
            .year
            .map_or_else(|| "unknown".to_string(), |y| y.to_string());
        by_year.entry(year).or_default().push(v);
    }
    BatchReport {
        schema_version: SCHEMA_VERSION,
        tool: format!("rewheel {}", env!("CARGO_PKG_VERSION")),
        all: Rate::of(verdicts),
        by_family: by_family
            .into_iter()
            .map(|(k, v)| (k, Rate::of(v)))
            .collect(),
        by_year: by_year.into_iter().map(|(k, v)| (k, Rate::of(v))).collect(),
        wheels: verdicts,
    }
}

/// Write the report as JSON and as HTML, where asked.
pub fn write_reports(
    verdicts: &[Verdict],
    json: Option<&Path>,
    page: Option<&Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(file) = json {
        let text = serde_json::to_string_pretty(&report(verdicts))?;
        crate::fsutil::write_atomic(file, text.as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    if let Some(file) = page {
        crate::fsutil::write_atomic(file, html(verdicts).as_bytes())
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(())
}

/// The table and the rates, as the end of a batch prints them.
pub fn summary(verdicts: &[Verdict]) -> String {
    let r = report(verdicts);
    let mut out = String::from(
        "\nwheel                                    backend       year  verdict       seconds\n",
    );
    for v in verdicts {
        out.push_str(&format!(
            "{:<40} {:<13} {:>4}  {:<12} {:>8.0}{}\n",
            format!("{} {}", v.name, v.version),
            v.family,
            v.year.map_or("?".to_string(), |y| y.to_string()),
            v.verdict,
            v.seconds,
            v.cause
                .as_deref()
                .filter(|_| !v.identical())
                .map(|c| format!("  {c}"))
                .unwrap_or_default()
        ));
    }
    out.push_str(&format!("\n{} wheels: {}\n", r.all.wheels, r.all.line()));
    for (family, rate) in &r.by_family {
        out.push_str(&format!("  backend {family:<12} {}\n", rate.line()));
    }
    for (year, rate) in &r.by_year {
        out.push_str(&format!("  year {year:<15} {}\n", rate.line()));
    }
    out
}

/// The report as one HTML page: the rates, then a row per wheel, the ones not reproduced first.
pub fn html(verdicts: &[Verdict]) -> String {
    let r = report(verdicts);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows: Vec<&Verdict> = verdicts.iter().collect();
    rows.sort_by_key(|v| (v.identical(), v.same_content()));
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><title>rewheel rebuild batch</title>\
         <style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}\
         .identical{color:#070}.differs,.failed{color:#a00}.same-content{color:#a60}</style>\n",
    );
    page.push_str(&format!(
        "<h1>{} published wheels rebuilt</h1><p>{}</p>\n<table><tr><th>backend</th><th>rate</th></tr>\n",
        r.all.wheels,
        esc(&r.all.line())
    ));
    for (family, rate) in &r.by_family {
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            esc(family),
            esc(&rate.line())
        ));
    }
    page.push_str("</table>\n<table><tr><th>wheel</th><th>sha256</th><th>backend</th><th>year</th><th>verdict</th><th>recipe</th><th>cause</th></tr>\n");
    for v in rows {
        page.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&v.verdict),
            esc(&v.wheel),
            &v.sha256.to_string()[..16],
            esc(v.generator.as_deref().unwrap_or("?")),
            v.year.map_or("?".to_string(), |y| y.to_string()),
            esc(&v.verdict),
            esc(v.recipe.as_deref().unwrap_or("")),
            esc(v.cause.as_deref().unwrap_or(""))
        ));
    }
    page.push_str("</table>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(family: &str, year: i16, verdict: &str) -> Verdict {
        Verdict {
            wheel: format!("{family}-{year}.whl"),
            sha256: Sha256::of(family.as_bytes()),
            name: family.into(),
            version: "1".into(),
            generator: None,
            family: family.into(),
            year: Some(year),
            verdict: verdict.into(),
            recipe: None,
            cause: Some("<b>".into()),
            attempts: 1,
            seconds: 1.0,
        }
    }

    #[test]
    fn rates_count_bit_for_bit_and_equal_content_by_family_and_year() {
        let all = [
            v("setuptools", 2021, "identical"),
            v("setuptools", 2023, "same-content"),
            v("flit-core", 2023, "differs"),
            v("flit-core", 2023, "failed"),
        ];
        let r = report(&all);
        assert_eq!(
            r.all,
            Rate {
                wheels: 4,
                identical: 1,
                same_content: 2
            }
        );
        assert_eq!(r.by_family["setuptools"].same_content, 2);
        assert_eq!(r.by_year["2023"].wheels, 3);
        assert!(
            summary(&all)
                .contains("4 wheels: 1/4 bit for bit, 2/4 equal after normalising entry times")
        );
        // What a published wheel's listing says is escaped, not markup.
        assert!(html(&all).contains("&lt;b&gt;") && !html(&all).contains("<b>"));
        assert_eq!(family(Some("bdist_wheel (0.36.2)")), "setuptools");
        assert_eq!(family(Some("pdm-backend (2.1.7)")), "pdm-backend");
        assert_eq!(family(None), "other");
    }
}
