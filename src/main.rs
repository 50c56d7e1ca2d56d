use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(rewheel::cli::main())
}
