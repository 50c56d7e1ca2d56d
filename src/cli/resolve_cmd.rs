//! `rewheel resolve`: each cell's graph, its cycles and their ways out, or why a package is in it.

use super::args::{Format, ResolveArgs};
use super::output::emit;
use crate::errors::{Error, usage};
use crate::exit::ExitCode;
use crate::names::PackageName;
use crate::resolve::CellGraph;
use crate::resolve::explain::WayOut;
use crate::resolve::report;
use crate::resolve::session::resolve;
use anyhow::Context;
use std::str::FromStr;

pub(crate) fn run(args: ResolveArgs) -> Result<ExitCode, Error> {
    let resolved = resolve(&super::settings::resolve(&args.input)?, !args.no_explain)?;
    if let Some(name) = &args.why {
        let name = PackageName::from_str(name)
            .with_context(|| format!("--why {name}: not a package name"))?;
        return print_why(&resolved.graphs, &name, args.output.as_deref());
    }
    let report = resolved.report();
    let text = match args.format {
        Format::Text => report::text(&report),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Dot => report::dot(&report),
        Format::Requirements => match report.cells.as_slice() {
            [cell] => report::requirements(cell),
            cells => usage!(
                "--format requirements writes one cell's closure, and {} cells were resolved\nhint: name one with --python X.Y or --cells ID",
                cells.len()
            ),
        },
    };
    emit(&text, args.output.as_deref())?;
    let cycle = resolved.has_error_cycle();
    crate::exit::keep_until_exit(resolved);
    Ok(if cycle {
        ExitCode::Cycle
    } else {
        ExitCode::Success
    })
}

fn print_why(
    graphs: &[(CellGraph, Vec<Vec<WayOut>>)],
    name: &PackageName,
    output: Option<&std::path::Path>,
) -> Result<ExitCode, Error> {
    let mut text = String::new();
    let mut found = false;
    for (cg, _) in graphs {
        let paths = cg.graph.why(name);
        if paths.is_empty() {
            text.push_str(&format!(
                "{}: {name} is not in this cell's graph\n",
                cg.cell.id
            ));
        }
        for (node, path) in paths {
            found = true;
            let start = path.first().map(|&e| cg.graph.source(e)).unwrap_or(node);
            let what = if path.is_empty() {
                " (asked for directly)"
            } else {
                ""
            };
            text.push_str(&format!(
                "{}: {}{what}\n",
                cg.cell.id,
                cg.graph.render_chain(start, &path)
            ));
        }
    }
    emit(&text, output)?;
    if !found {
        usage!("{name} is in no cell's graph");
    }
    Ok(ExitCode::Success)
}
