//! Where jobs run: `local` (an interpreter on the host) or `docker` (a container per job).

mod contract;
pub mod docker;
pub mod local;
pub mod open;

pub mod sandbox;

pub use contract::{Backend, Runtime};
pub use open::{BackendKind, BackendRequest, OpenError, claim_build_root, open};
pub use sandbox::other_shell;
