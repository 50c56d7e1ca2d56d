use std::process::ExitCode;

// Resolving reads every index page of a closure (5 MB of JSON for a 40-pin lock) into many
// small allocations; glibc's allocator spent a fifth of a warm resolve in malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything starts a process: what rewheel's parent left open stays with rewheel.
    rewheel::doors::close_inherited();
    ExitCode::from(rewheel::cli::main())
}
