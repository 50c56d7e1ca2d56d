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
/// rewheel itself could not work: the run store, the Docker engine, the disk. Not the input's
/// fault, and not a build's.
pub const ENVIRONMENT: u8 = 5;
/// Interrupted by a terminating signal (SIGINT as Ctrl-C sends it, SIGTERM, SIGHUP): one code
/// for all three, since each ends the run the same way; a build continues with `--resume`.
pub const INTERRUPTED: u8 = 130;

/// A command stopped by a terminating signal, as an error: exit `INTERRUPTED`.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// The process ends right after its command: what resolution read (every index page of the
/// closure, as candidates) is left for the OS to reclaim, not freed one allocation at a time,
/// which was a fifth of a warm `resolve` of a 40-pin lock and came after the last job of a build.
pub fn keep_until_exit<T>(value: T) {
    std::mem::forget(value);
}

/// The exit code of a command that failed with `err`, decided from the types in its chain:
/// the first error rewheel knows the kind of decides.
pub fn of_error(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return INTERRUPTED;
        }
        if let Some(crate::build::images::ImageError::Unknown(_)) = cause.downcast_ref() {
            return INPUT;
        }
        // `#[error(transparent)]` keeps the image error out of the chain: look inside.
        if let Some(crate::build::backend::OpenError::Image(image)) = cause.downcast_ref() {
            return match image {
                crate::build::images::ImageError::Unknown(_) => INPUT,
                _ => ENVIRONMENT,
            };
        }
        if let Some(crate::store::StoreError::NoRun(_) | crate::store::StoreError::Busy { .. }) =
            cause.downcast_ref()
        {
            return INPUT;
        }
        if let Some(
            crate::build::backend::OpenError::NoEngine(_)
            | crate::build::backend::OpenError::BuildRoot { .. },
        ) = cause.downcast_ref()
        {
            return ENVIRONMENT;
        }
        if cause.is::<crate::store::StoreError>()
            || cause.is::<bollard::errors::Error>()
            || cause.is::<crate::build::images::ImageError>()
        {
            return ENVIRONMENT;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::QuotaExceeded
            )
        {
            return ENVIRONMENT;
        }
        if cause.is::<crate::build::plan::PlanError>()
            || cause.is::<crate::resolve::repository::RepoError>()
        {
            return INPUT;
        }
    }
    INPUT
}

/// The error and its causes, each said once: our errors already include their cause in their
/// message, while context added at the edge does not.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

pub const TABLE: &str = "\
Exit codes:
  0  success (for check: everything reproducible)
  1  not reproducible, or a hash differs from --expect
  2  usage or input error (requirements, index, sdist, hash)
  3  build failure
  4  dependency cycle in at least one cell
  5  rewheel could not work: the run store, the Docker engine, the disk
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); `rewheel build --resume RUN` continues";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_of_error_decides_the_code() {
        let store = anyhow::Error::new(crate::store::StoreError::Corrupt {
            path: "blob".into(),
            actual: "0".into(),
        });
        assert_eq!(of_error(&store), ENVIRONMENT);
        let run = anyhow::Error::new(crate::store::StoreError::NoRun("x".into()));
        assert_eq!(of_error(&run), INPUT);
        let busy = anyhow::Error::new(crate::store::StoreError::Busy {
            run: "x".into(),
            holder: "process 1".into(),
            path: "live/x.lock".into(),
        });
        assert_eq!(of_error(&busy), INPUT);
        let unreadable = anyhow::Error::new(crate::store::StoreError::Unreadable {
            path: "runs.sqlite3".into(),
            why: "it is empty".into(),
        });
        assert_eq!(of_error(&unreadable), ENVIRONMENT);
        let stopped = anyhow::Error::new(Interrupted).context("rebuilding six");
        assert_eq!(of_error(&stopped), INTERRUPTED);
        let full = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::StorageFull))
            .context("writing a wheel");
        assert_eq!(of_error(&full), ENVIRONMENT);
        let unknown = anyhow::Error::new(crate::build::images::ImageError::Unknown("sid".into()));
        let opened = anyhow::Error::new(crate::build::backend::OpenError::Image(
            crate::build::images::ImageError::Unknown("sid".into()),
        ));
        assert_eq!(of_error(&opened), INPUT);
        let engine = anyhow::Error::new(crate::build::backend::OpenError::Image(
            crate::build::images::ImageError::NoDebootstrap,
        ));
        assert_eq!(of_error(&engine), ENVIRONMENT);
        assert_eq!(of_error(&unknown), INPUT);
        assert_eq!(of_error(&anyhow::anyhow!("a bad requirements line")), INPUT);
    }
}
