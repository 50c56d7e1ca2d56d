//! How a comparison is shown: a text table per cell, JUnit XML (a test case per wheel and cell),
//! and one self-contained HTML page with the summary and every diff.

use crate::verify::compare::{CompareReport, PairReport};
use crate::verify::wheel_diff::Verdict;
use std::fmt::Write;

pub(crate) fn verdict_line(p: &PairReport) -> String {
    match &p.verdict {
        Verdict::Identical => "identical".into(),
        Verdict::SameContent { archive } => format!(
            "same content, different archive ({})",
            archive
                .iter()
                .map(|a| a.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Verdict::ContentDiffers {
            added,
            removed,
            changed,
            anomalies,
            ..
        } => {
            let real = changed.iter().filter(|c| !c.follows_other_changes).count();
            let mut line = format!(
                "content differs: {real} changed, {} added, {} removed",
                added.len(),
                removed.len()
            );
            if let Some(first) = anomalies.first() {
                let _ = write!(
                    line,
                    ", {} ambiguities in the zip (first: `{}`, {})",
                    anomalies.len(),
                    first.entry,
                    first.reason
                );
            }
            line
        }
    }
}

pub fn text(report: &CompareReport) -> String {
    let mut out = String::new();
    let mut cells: Vec<&str> = report.pairs.iter().map(|p| p.cell.as_str()).collect();
    cells.sort();
    cells.dedup();
    for cell in cells {
        let pairs: Vec<&PairReport> = report.pairs.iter().filter(|p| p.cell == cell).collect();
        let same = pairs.iter().filter(|p| p.reproducible()).count();
        let title = if cell.is_empty() { "wheels" } else { cell };
        let _ = writeln!(out, "{title}: {same} of {} reproducible", pairs.len());
        for p in &pairs {
            let mark = if p.reproducible() { "ok  " } else { "DIFF" };
            let _ = writeln!(out, "  {mark} {:<50} {}", p.wheel, verdict_line(p));
            if let Some(other) = &p.b_wheel {
                let _ = writeln!(
                    out,
                    "       the two files have different names: {} and {other}{}",
                    p.wheel,
                    if p.reproducible() {
                        "; their bytes are identical"
                    } else {
                        ""
                    }
                );
            }
            if p.reproducible() {
                continue;
            }
            // Across time, what moved comes first: it is the answer to "why".
            match (p.same_inputs, p.moved_inputs.first()) {
                (Some(false), Some(_)) => {
                    for moved in &p.moved_inputs {
                        let _ = writeln!(out, "       inputs moved: {}", moved.describe());
                    }
                }
                (Some(true), _) => {
                    let _ = writeln!(
                        out,
                        "       same inputs, different bytes: the build is not reproducible"
                    );
                }
                _ => {}
            }
            let _ = writeln!(
                out,
                "       raw sha256        {} ≠ {}",
                &p.a_sha256[..16],
                &p.b_sha256[..16]
            );
            if let (Some(a), Some(b)) = (&p.a_stabilized_sha256, &p.b_stabilized_sha256) {
                let same = if a == b {
                    format!("equal after normalizing {}", p.normalizations.join(", "))
                } else {
                    "differ".into()
                };
                let _ = writeln!(
                    out,
                    "       stabilized sha256 {} {} {} ({same})",
                    &a[..16],
                    if a == b { "=" } else { "≠" },
                    &b[..16]
                );
            }
            for attribution in &p.attribution {
                let _ = writeln!(
                    out,
                    "       {}: {}",
                    attribution.entry, attribution.evidence
                );
            }
            if let Some(remedy) = &p.remedy {
                let _ = writeln!(out, "       {}", remedy.line());
            }
            if let Some(hint) = &p.remedy_hint {
                let _ = writeln!(out, "       {}", hint.line());
            }
            if let Verdict::ContentDiffers { changed, .. } = &p.verdict {
                for change in changed.iter().filter(|c| !c.follows_other_changes) {
                    if let Some(diff) = &change.diff {
                        for line in diff.lines().take(40) {
                            let _ = writeln!(out, "         {line}");
                        }
                    } else if let (Some((sa, sb)), Some(at)) =
                        (change.sizes, change.first_difference)
                    {
                        let _ = writeln!(
                            out,
                            "         {}: binary, {sa} vs {sb} bytes, first difference at offset {at}",
                            change.entry
                        );
                    }
                }
            }
        }
    }
    for only in &report.only_in_a {
        let _ = writeln!(out, "only in {}: {only}", report.a);
    }
    for only in &report.only_in_b {
        let _ = writeln!(out, "only in {}: {only}", report.b);
    }
    for f in &report.failed {
        let _ = writeln!(
            out,
            "NOT BUILT [{}] {} ({} side): {}",
            f.cell, f.job, f.side, f.error
        );
    }
    if let Some(next) = &report.next {
        let _ = writeln!(out, "next: {}", next.advice);
        for (n, c) in next.commands.iter().enumerate() {
            let _ = writeln!(out, "  {}. {}:\n     {}", n + 1, c.purpose, c.command);
        }
    }
    out
}

/// What a row's remedy column says: never nothing, since an empty cell reads as "no idea".
pub fn remedy_cell(p: &PairReport) -> String {
    if p.reproducible() {
        return "none needed".into();
    }
    if let Some(r) = &p.remedy {
        return r.line();
    }
    if let Some(h) = &p.remedy_hint {
        return h.line();
    }
    if !p.moved_inputs.is_empty() {
        return "none: its inputs moved (see the cause), so the two builds are not the same build"
            .into();
    }
    "not tried: `rewheel check --remedies` builds a wheel twice with each known remedy".into()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn junit(report: &CompareReport) -> String {
    let failures = report.pairs.iter().filter(|p| !p.reproducible()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"rewheel\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\">",
        report.pairs.len() + report.failed.len(),
        report.failed.len()
    );
    let mut cells: Vec<&str> = report
        .pairs
        .iter()
        .map(|p| p.cell.as_str())
        .chain(report.failed.iter().map(|f| f.cell.as_str()))
        .collect();
    cells.sort();
    cells.dedup();
    for cell in cells {
        let pairs: Vec<&PairReport> = report.pairs.iter().filter(|p| p.cell == cell).collect();
        let failed = pairs.iter().filter(|p| !p.reproducible()).count();
        // A job that did not build is an error of the suite, not a silent absence.
        let unbuilt: Vec<_> = report.failed.iter().filter(|f| f.cell == cell).collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{}\">",
            xml(cell),
            pairs.len() + unbuilt.len(),
            unbuilt.len()
        );
        for f in unbuilt {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\">\n      <error message=\"did not build ({} side)\">{}</error>\n    </testcase>",
                xml(cell),
                xml(&f.job),
                f.side,
                xml(&f.error)
            );
        }
        for p in pairs {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(cell),
                xml(&p.wheel)
            );
            if p.reproducible() {
                out.push_str("/>\n");
                continue;
            }
            let details: Vec<String> = p
                .attribution
                .iter()
                .map(|a| format!("{}: {}", a.entry, a.evidence))
                .chain(p.remedy.as_ref().map(|r| r.line()))
                .chain(p.remedy_hint.as_ref().map(|h| h.line()))
                .collect();
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml(&verdict_line(p)),
                xml(&details.join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// What a pair's row is filed under in the HTML summary: `identical`, the variation its
/// difference is attributed to, an archive-level cause, or `unexplained`.
pub fn cause(p: &PairReport) -> String {
    if p.reproducible() {
        return "identical".into();
    }
    if let Some(moved) = p.moved_inputs.first() {
        return format!("{} moved", moved.input.replace('-', " "));
    }
    if let Some(v) = p.attribution.iter().find_map(|a| a.variation) {
        return v.name().to_string();
    }
    if let Verdict::ContentDiffers { anomalies, .. } = &p.verdict
        && !anomalies.is_empty()
    {
        return "ambiguous zip".into();
    }
    if let Verdict::SameContent { archive } = &p.verdict
        && let Some(first) = archive.first()
    {
        return first.describe().to_string();
    }
    "unexplained".into()
}

/// A bar per cause, the count beside it: no script, no external asset.
fn cause_chart(counts: &[(String, usize)], total: usize) -> String {
    let (bar, row) = (360.0, 22);
    let mut svg = format!(
        "<svg id=\"causes\" xmlns=\"http://www.w3.org/2000/svg\" width=\"620\" height=\"{}\" role=\"img\" aria-label=\"wheels by cause\">",
        counts.len() * row + 4
    );
    for (i, (name, n)) in counts.iter().enumerate() {
        let y = i * row + 2;
        let width = (bar * *n as f64 / total.max(1) as f64).max(2.0);
        let color = if name == "identical" {
            "#2da44e"
        } else {
            "#cf222e"
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"150\" y=\"{y}\" width=\"{width:.1}\" height=\"16\" fill=\"{color}\"><title>{}: {n}</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"13\">{n}</text>",
            y + 13,
            xml(name),
            xml(name),
            150.0 + width + 6.0,
            y + 13
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn html(report: &CompareReport) -> String {
    let mut rows = String::new();
    let mut details = String::new();
    // What needs action first: differing wheels by cause, then the identical ones.
    let mut order: Vec<usize> = (0..report.pairs.len()).collect();
    order.sort_by_key(|&i| {
        let p = &report.pairs[i];
        (p.reproducible(), cause(p), p.cell.clone(), p.wheel.clone())
    });
    let mut counts: Vec<(String, usize)> = Vec::new();
    for &i in &order {
        let c = cause(&report.pairs[i]);
        match counts.iter_mut().find(|(n, _)| *n == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    for &i in &order {
        let p = &report.pairs[i];
        let class = if p.reproducible() { "ok" } else { "diff" };
        let remedy = xml(&remedy_cell(p));
        let _ = write!(
            rows,
            "<tr class=\"{class}\" data-cause=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{remedy}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            xml(&cause(p)),
            xml(&p.cell),
            if p.reproducible() {
                xml(&p.wheel)
            } else {
                format!("<a href=\"#w{i}\">{}</a>", xml(&p.wheel))
            },
            xml(&verdict_line(p)),
            xml(&cause(p)),
            &p.a_sha256[..16],
            &p.b_sha256[..16]
        );
        if p.reproducible() {
            continue;
        }
        let _ = write!(
            details,
            "<section id=\"w{i}\"><h2>{} — {}</h2><p>{}</p><ul>",
            xml(&p.cell),
            xml(&p.wheel),
            xml(&verdict_line(p))
        );
        for a in &p.attribution {
            let _ = write!(
                details,
                "<li><code>{}</code>: {}</li>",
                xml(&a.entry),
                xml(&a.evidence)
            );
        }
        details.push_str("</ul>");
        if let Verdict::ContentDiffers { changed, .. } = &p.verdict {
            for c in changed.iter().filter(|c| !c.follows_other_changes) {
                match &c.diff {
                    Some(diff) => {
                        let mut pre = String::new();
                        for line in diff.lines() {
                            let class = if line.starts_with('+') && !line.starts_with("+++") {
                                "add"
                            } else if line.starts_with('-') && !line.starts_with("---") {
                                "del"
                            } else {
                                "ctx"
                            };
                            let _ = writeln!(pre, "<span class=\"{class}\">{}</span>", xml(line));
                        }
                        let _ = write!(
                            details,
                            "<h3>{}</h3><pre class=\"diff\">{pre}</pre>",
                            xml(&c.entry)
                        );
                    }
                    None => {
                        let _ = write!(
                            details,
                            "<h3>{}</h3><p>binary: {:?} bytes, first difference at offset {:?}</p>",
                            xml(&c.entry),
                            c.sizes,
                            c.first_difference
                        );
                    }
                }
            }
        }
        details.push_str("</section>");
    }
    let total = report.pairs.len();
    let same = report.pairs.iter().filter(|p| p.reproducible()).count();
    let next = report.next.as_ref().map_or_else(String::new, |next| {
        let mut html = format!(
            "<section id=\"next\"><h2>Next</h2><p>{}</p><ol>",
            xml(&next.advice)
        );
        for c in &next.commands {
            let _ = write!(
                html,
                "<li>{}:<pre>{}</pre></li>",
                xml(&c.purpose),
                xml(&c.command)
            );
        }
        html.push_str("</ol></section>\n");
        html
    });
    let buttons: String = std::iter::once(("all".to_string(), total))
        .chain(counts.iter().cloned())
        .map(|(name, n)| {
            format!(
                "<button type=\"button\" data-filter=\"{0}\">{0} ({n})</button>",
                xml(&name)
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rewheel: {same} of {total} reproducible</title>\n\
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}tr.ok td:nth-child(3){{color:#17702a}}\
tr.diff td:nth-child(3){{color:#a31515;font-weight:bold}}pre.diff{{background:#f6f6f6;padding:.5em;overflow:auto}}\
.add{{background:#e6ffec}}.del{{background:#ffebe9}}#filters button{{margin:0 .3em .6em 0}}</style></head>\n<body><h1>rewheel: {same} of {total} wheels reproducible</h1>\
<p>A: <code>{}</code> — B: <code>{}</code></p>\n{next}<h2>By cause</h2>{}\n<p id=\"filters\">{buttons}</p>\n\
<table id=\"summary\"><thead><tr><th>cell</th><th>wheel</th><th>verdict</th><th>cause</th><th>remedy</th><th>A sha256</th><th>B sha256</th></tr></thead><tbody>{rows}</tbody></table>\n{details}\n\
<script>function show(f){{for(const r of document.querySelectorAll('#summary tbody tr'))r.hidden=f!=='all'&&r.dataset.cause!==f;}}\
for(const b of document.querySelectorAll('#filters button'))b.onclick=()=>show(b.dataset.filter);\
const c=new URLSearchParams(location.search).get('cause');if(c)show(c);</script>\n</body></html>\n",
        xml(&report.a),
        xml(&report.b),
        cause_chart(&counts, total)
    )
}
