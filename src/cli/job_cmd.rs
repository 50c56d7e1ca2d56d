//! CI splitting: `rewheel plan` (one job per wheel and cell), `rewheel build --job ID` (one job
//! from its inputs), and `rewheel merge` (results into one run of the store).

use super::args::{BuildArgs, Emit, MergeArgs, PlanArgs};
use super::output::emit;
use crate::ci::emit as ci_emit;
use crate::ci::job_runner::{JobRun, JobRunSettings, run_job};
use crate::ci::plan_doc as ci_plan;
use crate::errors::{Error, usage};
use crate::exit::ExitCode;

pub(crate) fn plan(args: PlanArgs, argv: &[String]) -> Result<ExitCode, Error> {
    let planned = match crate::build::run::plan(&super::settings::build(&args.build)?, argv)? {
        Ok(planned) => planned,
        Err(cycle) => {
            print!("{}", crate::resolve::report::text(&cycle));
            return Ok(ExitCode::Cycle);
        }
    };
    let doc = ci_plan::document(&planned)?;
    let ci = super::settings::ci_options(&args, argv);
    let text = match args.emit {
        Emit::Json => serde_json::to_string_pretty(&doc)? + "\n",
        Emit::Github => serde_json::to_string_pretty(&ci_plan::github(&doc))? + "\n",
        Emit::GithubWorkflow => ci_emit::github_workflow(&doc, &ci),
        Emit::Gitlab => ci_emit::gitlab(&doc, &ci),
    };
    if let Some(file) = &args.check {
        let committed = crate::ci::inputs::read_given_text(file, crate::ci::inputs::MAX_PLAN)?;
        return Ok(match ci_emit::stale(&committed, &text) {
            None => {
                eprintln!("{} matches the plan", file.display());
                ExitCode::Success
            }
            Some(why) => {
                eprintln!(
                    "error: {} no longer matches the plan: {why}\nhint: regenerate it: the same command with `-o {}` instead of `--check`",
                    file.display(),
                    file.display()
                );
                ExitCode::NotReproducible
            }
        });
    }
    emit(&text, args.output.as_deref())?;
    Ok(ExitCode::Success)
}

/// `rewheel build --plan PLAN --job ID --inputs DIR --out DIR`.
pub(crate) fn run_one(args: &BuildArgs) -> Result<ExitCode, Error> {
    let (Some(job), Some(plan_file), Some(inputs)) = (&args.job, &args.plan_file, &args.inputs)
    else {
        usage!("--job needs --plan FILE and --inputs DIR");
    };
    let settings = JobRunSettings {
        plan_file: plan_file.clone(),
        job: crate::ids::JobId::parse(job)?,
        inputs: inputs.clone(),
        out: args.out.clone(),
        backend: super::settings::backend_request(args),
        limits: super::settings::index(&args.input.index)?.limits,
    };
    Ok(match run_job(&settings)? {
        JobRun::Built { .. } => ExitCode::Success,
        JobRun::Failed { error } => {
            eprintln!("error: {job}: {error}");
            ExitCode::BuildFailed
        }
        JobRun::Interrupted => ExitCode::Interrupted,
    })
}

/// `rewheel merge`: job results into one run of the store.
pub(crate) fn merge(args: MergeArgs, argv: Vec<String>) -> Result<ExitCode, Error> {
    let store_root = super::settings::store_root(args.store.as_ref())?;
    let merged =
        crate::ci::merge::merge(&args.results, args.plan_file.as_deref(), &store_root, &argv)?;
    println!(
        "run {}: {} job results merged, {} failed",
        merged.run_id, merged.jobs, merged.failed
    );
    Ok(if merged.failed > 0 {
        ExitCode::BuildFailed
    } else {
        ExitCode::Success
    })
}
