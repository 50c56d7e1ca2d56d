//! The exit codes, one table for every command (also in `--help` and README).

/// Success; for `check`, every wheel reproducible.
pub const SUCCESS: u8 = 0;
/// Not reproducible, or a hash differs from what was expected.
pub const NOT_REPRODUCIBLE: u8 = 1;
/// Bad usage or input: a requirements line, an unknown package or version, a hash mismatch,
/// an invalid or unsafe sdist, an unreachable index.
pub const INPUT: u8 = 2;
/// A build failed.
pub const BUILD_FAILED: u8 = 3;
/// A dependency cycle in at least one cell.
pub const CYCLE: u8 = 4;

pub const TABLE: &str = "\
Exit codes:
  0  success (for check: everything reproducible)
  1  not reproducible, or a hash differs from --expect
  2  usage or input error (requirements, index, sdist, hash)
  3  build failure
  4  dependency cycle in at least one cell
  130  interrupted (Ctrl-C); `rewheel build --resume RUN` continues";
