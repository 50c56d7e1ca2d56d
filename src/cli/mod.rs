//! The command line, thin over the library: `args` (every flag, as clap parses it) →
//! `settings` (plain library settings, made once) → one `*_cmd` per command (one call into a
//! stage, then printing) → an exit code, or an `errors::Error` that decides one.

mod args;
mod bisect_cmd;
mod build_cmd;
mod check_cmd;
mod compare_cmd;
mod images_cmd;
mod job_cmd;
mod output;
mod rebuild_cmd;
mod resolve_cmd;
mod runs_cmd;
mod settings;

use crate::exit::ExitCode;
use args::{Cli, Command};
use clap::Parser;

/// Run the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    init_tracing(&cli);
    let result = match cli.command {
        Command::Resolve(args) => resolve_cmd::run(args),
        // One job of a CI plan: no resolution, no run of the store.
        Command::Build(args) if args.job.is_some() => job_cmd::run_one(&args),
        Command::Build(args) => build_cmd::run_build(args, argv),
        Command::Check(args) => check_cmd::run(args, argv),
        Command::Compare(args) => compare_cmd::run(args),
        Command::Bisect(args) => bisect_cmd::run(args),
        Command::Rebuild(args) => rebuild_cmd::run(args),
        Command::Plan(args) => job_cmd::plan(args, &argv),
        Command::Merge(args) => job_cmd::merge(args, argv),
        Command::Runs(command) => runs_cmd::run(command),
        Command::Images(command) => images_cmd::run(command),
        Command::Completions { shell } => {
            let mut text = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "rewheel", &mut text);
            print_bytes(&text)
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut text)
                .map_err(Into::into)
                .and_then(|()| print_bytes(&text))
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

/// Generated text, written whole: the generators panic on a closed pipe (`| head`).
fn print_bytes(text: &[u8]) -> Result<ExitCode, crate::errors::Error> {
    std::io::Write::write_all(&mut std::io::stdout(), text)?;
    Ok(ExitCode::Success)
}

fn init_tracing(cli: &Cli) {
    use std::io::IsTerminal;
    crate::progress::set_quiet(cli.quiet);
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    // A log file or a CI log shows escape codes as noise.
    let ansi = match cli.color {
        args::Color::Always => true,
        args::Color::Never => false,
        args::Color::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::args::Cli::command().debug_assert();
    }
}
