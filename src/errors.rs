//! The error at the edge of the program: what a command returns when it fails, and the one
//! place a failure becomes an exit code. Every error type rewheel defines decides its code
//! variant by variant (`Classify`, no catch-all), so a new variant does not compile until
//! someone decides; the library's `anyhow` errors are sorted into `Error` once, at the edge,
//! by the first cause of such a type. Whatever has none is `Unclassified`, and a unit test
//! keeps every error type of the library out of it.

use crate::build::backend::OpenError;
use crate::build::images::ImageError;
use crate::build::job::JobError;
use crate::build::plan::PlanError;
use crate::build::record::ResumeError;
use crate::build::wheel_install::InstallError;
use crate::exit::{ExitCode, Interrupted, said_once};
use crate::resolve::CellError;
use crate::resolve::archive::ArchiveError;
use crate::resolve::crates::LockError;
use crate::resolve::index::IndexError;
use crate::resolve::inspect::InspectError;
use crate::resolve::provider::ResolveError;
use crate::resolve::repository::RepoError;
use crate::store::StoreError;
use std::error::Error as StdError;

/// A failed command, as `main` reports it: a message and an exit code.
#[derive(Debug)]
pub enum Error {
    /// The command line asks for what the command cannot do: a flag without its partner, a
    /// package in no graph.
    Usage(String),
    /// What the library said about an error on its way up, outermost first.
    Context {
        context: Vec<String>,
        error: Box<Error>,
    },
    // Every error type rewheel defines, and the two of other crates that decide a code alone.
    Interrupted(Interrupted),
    Store(StoreError),
    Open(OpenError),
    Image(ImageError),
    Plan(PlanError),
    Resume(ResumeError),
    Job(JobError),
    Install(InstallError),
    Repo(RepoError),
    Cell(CellError),
    Resolve(ResolveError),
    Index(IndexError),
    Http(crate::http::HttpError),
    Archive(ArchiveError),
    Inspect(InspectError),
    CargoLock(LockError),
    Beneath(crate::beneath::BeneathError),
    Matrix(crate::matrix::MatrixError),
    Packages(crate::packages::PackagesError),
    Requirements(crate::requirements::RequirementsError),
    Pylock(crate::pylock::PylockError),
    CellId(crate::cell::BadCellId),
    PythonVersion(crate::cell::BadPythonVersion),
    Sha256(crate::digest::BadSha256),
    RunId(crate::ids::BadRunId),
    JobId(crate::ids::BadJobId),
    CiDocument(crate::ci::plan_doc::DocError),
    Compare(crate::verify::compare::CompareError),
    Zip(crate::verify::wheel_zip::ZipError),
    Wheel(crate::verify::wheel_diff::WheelError),
    Infer(crate::rebuild::infer::InferError),
    Docker(bollard::errors::Error),
    Io(std::io::Error),
    /// No error of a type rewheel classifies heads it: a message (`bail!`), or another crate's
    /// error. Its chain still decides, as the typed errors' sources do: a full disk below a
    /// zip error is the environment's fault; a message alone is about the input.
    Unclassified(anyhow::Error),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Input,
            Error::Context { error, .. } => error.exit_code(),
            Error::Interrupted(e) => e.exit_code(),
            Error::Store(e) => e.exit_code(),
            Error::Open(e) => e.exit_code(),
            Error::Image(e) => e.exit_code(),
            Error::Plan(e) => e.exit_code(),
            Error::Resume(e) => e.exit_code(),
            Error::Job(e) => e.exit_code(),
            Error::Install(e) => e.exit_code(),
            Error::Repo(e) => e.exit_code(),
            Error::Cell(e) => e.exit_code(),
            Error::Resolve(e) => e.exit_code(),
            Error::Index(e) => e.exit_code(),
            Error::Http(e) => e.exit_code(),
            Error::Archive(e) => e.exit_code(),
            Error::Inspect(e) => e.exit_code(),
            Error::CargoLock(e) => e.exit_code(),
            Error::Beneath(e) => e.exit_code(),
            Error::Matrix(e) => e.exit_code(),
            Error::Packages(e) => e.exit_code(),
            Error::Requirements(e) => e.exit_code(),
            Error::Pylock(e) => e.exit_code(),
            Error::CellId(e) => e.exit_code(),
            Error::PythonVersion(e) => e.exit_code(),
            Error::Sha256(e) => e.exit_code(),
            Error::RunId(e) => e.exit_code(),
            Error::JobId(e) => e.exit_code(),
            Error::CiDocument(e) => e.exit_code(),
            Error::Compare(e) => e.exit_code(),
            Error::Zip(e) => e.exit_code(),
            Error::Wheel(e) => e.exit_code(),
            Error::Infer(e) => e.exit_code(),
            Error::Docker(e) => e.exit_code(),
            Error::Io(e) => e.exit_code(),
            Error::Unclassified(e) => first_decided(e.chain()),
        }
    }

    /// Every message, outermost first, as the chain of causes says them.
    fn messages(&self) -> Vec<String> {
        match self {
            Error::Usage(message) => vec![message.clone()],
            Error::Context { context, error } => {
                context.iter().cloned().chain(error.messages()).collect()
            }
            Error::Unclassified(e) => e.chain().map(ToString::to_string).collect(),
            error => chain(error.typed()).map(ToString::to_string).collect(),
        }
    }
}

/// `bail!` for a command: returns `Error::Usage` with the message formatted.
macro_rules! usage {
    ($($message:tt)*) => {
        return Err($crate::errors::Error::Usage(format!($($message)*)))
    };
}
pub(crate) use usage;

/// The message `main` prints after `error: `; each cause said once.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&said_once(self.messages()))
    }
}

/// `?` in a command: anything `anyhow` takes, sorted once. `Error` is no `std::error::Error`,
/// which is what lets this stand beside `From<Error> for Error`.
impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(error: E) -> Self {
        take(error.into())
    }
}

/// The code an error decides, variant by variant: a new variant does not compile until someone
/// decides it. A struct is matched by its pattern (`Self { .. }`) for the same reason: made an
/// enum, it does not compile until its variants are decided.
trait Classify {
    fn exit_code(&self) -> ExitCode;
}

/// Lists the types `Error` holds once, for what must name them all: which cause decides
/// (`decide`), taking it out of an `anyhow` error (`take`), and reading it back (`typed`).
macro_rules! typed_errors {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// The code `cause` decides, if its type is one rewheel classifies.
        fn decide(cause: &(dyn StdError + 'static)) -> Option<ExitCode> {
            $(
                if let Some(e) = cause.downcast_ref::<$ty>() {
                    return Some(e.exit_code());
                }
            )*
            None
        }

        /// Takes the first cause of a classified type out of the chain, with the context said
        /// above it. Only the error `anyhow` holds can be taken: one that is the cause of
        /// another crate's error stays inside it, `Unclassified` and whole, and decides there.
        fn take(error: anyhow::Error) -> Error {
            let Some(at) = error.chain().position(|cause| decide(cause).is_some()) else {
                return Error::Unclassified(error);
            };
            let context: Vec<String> = error.chain().take(at).map(ToString::to_string).collect();
            let at_type = |error: &anyhow::Error, is: fn(&(dyn StdError + 'static)) -> bool| {
                error.chain().nth(at).is_some_and(is)
            };
            let taken = $(
                if at_type(&error, |cause| cause.is::<$ty>()) {
                    error.downcast::<$ty>().map(Error::$variant)
                } else
            )* {
                Err(error)
            };
            match taken {
                Ok(error) if context.is_empty() => error,
                Ok(error) => Error::Context { context, error: Box::new(error) },
                Err(error) => Error::Unclassified(error),
            }
        }

        impl Error {
            /// The typed error this is, for its chain of causes.
            fn typed(&self) -> Option<&(dyn StdError + 'static)> {
                match self {
                    $(Error::$variant(e) => Some(e),)*
                    Error::Usage(_) | Error::Context { .. } | Error::Unclassified(_) => None,
                }
            }
        }

        /// The types classified, as written, for the test that every error type is.
        #[cfg(test)]
        const TYPED: &[&str] = &[$(stringify!($ty)),*];
    };
}

typed_errors! {
    Interrupted(Interrupted),
    Store(StoreError),
    Open(OpenError),
    Image(ImageError),
    Plan(PlanError),
    Resume(ResumeError),
    Job(JobError),
    Install(InstallError),
    Repo(RepoError),
    Cell(CellError),
    Resolve(ResolveError),
    Index(IndexError),
    Http(crate::http::HttpError),
    Archive(ArchiveError),
    Inspect(InspectError),
    CargoLock(LockError),
    Beneath(crate::beneath::BeneathError),
    Matrix(crate::matrix::MatrixError),
    Packages(crate::packages::PackagesError),
    Requirements(crate::requirements::RequirementsError),
    Pylock(crate::pylock::PylockError),
    CellId(crate::cell::BadCellId),
    PythonVersion(crate::cell::BadPythonVersion),
    Sha256(crate::digest::BadSha256),
    RunId(crate::ids::BadRunId),
    JobId(crate::ids::BadJobId),
    CiDocument(crate::ci::plan_doc::DocError),
    Compare(crate::verify::compare::CompareError),
    Zip(crate::verify::wheel_zip::ZipError),
    Wheel(crate::verify::wheel_diff::WheelError),
    Infer(crate::rebuild::infer::InferError),
    Docker(bollard::errors::Error),
    Io(std::io::Error),
}

fn chain<'a>(
    first: Option<&'a (dyn StdError + 'static)>,
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(first, |&cause| cause.source())
}

/// The first cause of a classified type decides; a chain with none is a message about the input.
fn first_decided<'a>(causes: impl Iterator<Item = &'a (dyn StdError + 'static)>) -> ExitCode {
    causes.filter_map(decide).next().unwrap_or(ExitCode::Input)
}

/// What `error` wraps decides, as its chain shows it.
fn below(error: &(dyn StdError + 'static)) -> ExitCode {
    first_decided(chain(error.source()))
}

impl Classify for Interrupted {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Interrupted,
        }
    }
}

impl Classify for StoreError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A run the user named that is not there, or that another process builds.
            StoreError::NoRun(_) | StoreError::Busy { .. } => ExitCode::Input,
            StoreError::Sql { .. }
            | StoreError::Io { .. }
            | StoreError::Unreadable { .. }
            | StoreError::Corrupt { .. } => ExitCode::Environment,
        }
    }
}

impl Classify for OpenError {
    fn exit_code(&self) -> ExitCode {
        match self {
            OpenError::Image(image) => image.exit_code(),
            OpenError::NoEngine(_) | OpenError::BuildRoot { .. } => ExitCode::Environment,
            // What the cell or the settings ask of an image or of the host: theirs to change.
            OpenError::NoImage(_)
            | OpenError::ImageMissing { .. }
            | OpenError::Probe { .. }
            | OpenError::WrongPython { .. }
            | OpenError::NoInterpreter(_)
            | OpenError::HostLacks(_)
            | OpenError::NoDpkg(_)
            | OpenError::SuppliedMissing { .. }
            | OpenError::SuppliedSystem { .. }
            | OpenError::SuppliedLocal(_) => ExitCode::Input,
        }
    }
}

impl Classify for ImageError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A recipe name the user gave.
            ImageError::Unknown(_) => ExitCode::Input,
            ImageError::NoDebootstrap
            | ImageError::Debootstrap { .. }
            | ImageError::Engine(_)
            | ImageError::Io(_) => ExitCode::Environment,
        }
    }
}

impl Classify for PlanError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A plan refused is the input's fault, whatever it wraps.
            PlanError::Repo { .. }
            | PlanError::Cell(_)
            | PlanError::NoSeed { .. }
            | PlanError::Cycle(_) => ExitCode::Input,
        }
    }
}

impl Classify for ResumeError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A run the user named that this rewheel does not resume as asked.
            ResumeError::CommandLineOnly { .. }
            | ResumeError::NotResumable { .. }
            | ResumeError::Newer { .. }
            | ResumeError::Unreadable { .. }
            | ResumeError::OtherCommand { .. }
            | ResumeError::SecondSide { .. } => ExitCode::Input,
        }
    }
}

impl Classify for JobError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // A job's failure ends its run (exit 3 from the run's ending, not from here); one
            // that escapes as an error stays an input error, as it always was.
            JobError::Setup(_)
            | JobError::Input(_)
            | JobError::Failed { .. }
            | JobError::Timeout(..) => ExitCode::Input,
        }
    }
}

impl Classify for InstallError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for RepoError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // What the index or an sdist holds, whatever it wraps.
            RepoError::Index(_)
            | RepoError::Archive(_)
            | RepoError::Inspect { .. }
            | RepoError::BadRequirement { .. }
            | RepoError::NoSdist { .. }
            | RepoError::NoWheel { .. }
            | RepoError::BadWheel { .. } => ExitCode::Input,
        }
    }
}

impl Classify for CellError {
    fn exit_code(&self) -> ExitCode {
        match self {
            // Boxed, the repository's error is a `Box` to the chain, not a `RepoError`: what
            // it wraps decides (a full disk is the environment's), as it always did.
            CellError::Repo { .. } => below(self),
            CellError::Resolve { source, .. } => source.exit_code(),
            CellError::NoSuchVersion { .. } | CellError::HashMismatch { .. } => ExitCode::Input,
        }
    }
}

impl Classify for ResolveError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ResolveError::NoSolution(_) => ExitCode::Input,
            // Boxed, as in `CellError::Repo`.
            ResolveError::Repo { .. } => below(self),
        }
    }
}

impl Classify for IndexError {
    fn exit_code(&self) -> ExitCode {
        match self {
            IndexError::Http(http) => http.exit_code(),
            IndexError::Io { source, .. } => source.exit_code(),
            IndexError::UnknownPackage { .. }
            | IndexError::BadPage { .. }
            | IndexError::HashMismatch { .. }
            | IndexError::TooLarge { .. }
            | IndexError::Offline { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::http::HttpError {
    fn exit_code(&self) -> ExitCode {
        use crate::http::HttpError;
        match self {
            HttpError::Write { source, .. } => source.exit_code(),
            // An unreachable or misbehaving index is the one the user named.
            HttpError::NotFound { .. }
            | HttpError::Unreachable { .. }
            | HttpError::Status { .. }
            | HttpError::TooLarge { .. }
            | HttpError::Encoding { .. }
            | HttpError::Undecodable { .. } => ExitCode::Input,
        }
    }
}

impl Classify for ArchiveError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ArchiveError::Write { source, .. } => source.exit_code(),
            ArchiveError::Invalid { .. }
            | ArchiveError::Unsafe { .. }
            | ArchiveError::TooLarge { .. }
            | ArchiveError::ConfigTooLarge { .. }
            | ArchiveError::HugeHeaders { .. }
            | ArchiveError::TooManyEntries { .. }
            | ArchiveError::Unsupported { .. } => ExitCode::Input,
        }
    }
}

impl Classify for InspectError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for LockError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::beneath::BeneathError {
    fn exit_code(&self) -> ExitCode {
        use crate::beneath::BeneathError;
        match self {
            BeneathError::NotBelow(_)
            | BeneathError::Link(_)
            | BeneathError::NotFile(_)
            | BeneathError::TooLarge { .. } => ExitCode::Input,
            // Its io error is a field, not its source: the chain never showed it, so a full
            // disk here has always been an input error.
            BeneathError::Io { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::matrix::MatrixError {
    fn exit_code(&self) -> ExitCode {
        use crate::matrix::MatrixError;
        match self {
            MatrixError::Read { source, .. } => source.exit_code(),
            MatrixError::Packages(packages) => packages.exit_code(),
            MatrixError::Invalid { .. }
            | MatrixError::BadGlob { .. }
            | MatrixError::NoMatch { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::packages::PackagesError {
    fn exit_code(&self) -> ExitCode {
        use crate::packages::PackagesError;
        match self {
            PackagesError::Read { source, .. } | PackagesError::Patch { source, .. } => {
                source.exit_code()
            }
            PackagesError::Invalid { .. } | PackagesError::Twice { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::requirements::RequirementsError {
    fn exit_code(&self) -> ExitCode {
        use crate::requirements::RequirementsError;
        match self {
            RequirementsError::Pylock(pylock) => pylock.exit_code(),
            RequirementsError::Read { source, .. } => source.exit_code(),
            RequirementsError::Line { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::pylock::PylockError {
    fn exit_code(&self) -> ExitCode {
        match self {
            crate::pylock::PylockError::Invalid { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::cell::BadCellId {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::cell::BadPythonVersion {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

// A hash or an id that is not one, as a document or the command line gave it.
impl Classify for crate::digest::BadSha256 {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::ids::BadRunId {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::ids::BadJobId {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::ci::plan_doc::DocError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::verify::compare::CompareError {
    fn exit_code(&self) -> ExitCode {
        use crate::verify::compare::CompareError;
        match self {
            CompareError::Unknown(_) => ExitCode::Input,
            // A damaged blob is the environment's fault, not the input's.
            CompareError::Store(store) => store.exit_code(),
            CompareError::Io { source, .. } => source.exit_code(),
        }
    }
}

impl Classify for crate::verify::wheel_zip::ZipError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::verify::wheel_diff::WheelError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self { .. } => ExitCode::Input,
        }
    }
}

impl Classify for crate::rebuild::infer::InferError {
    fn exit_code(&self) -> ExitCode {
        match self {
            crate::rebuild::infer::InferError::NotAWheel { .. } => ExitCode::Input,
        }
    }
}

impl Classify for bollard::errors::Error {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Environment
    }
}

impl Classify for std::io::Error {
    fn exit_code(&self) -> ExitCode {
        use std::io::ErrorKind;
        match self.kind() {
            ErrorKind::StorageFull
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::PermissionDenied
            | ErrorKind::QuotaExceeded => ExitCode::Environment,
            // Any other kind says nothing of the host; what the error wraps may.
            _ => below(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::ErrorKind;
    use std::path::Path;

    fn code(error: anyhow::Error) -> ExitCode {
        Error::from(error).exit_code()
    }

    fn run_id() -> crate::ids::RunId {
        crate::ids::RunId::parse("20200101-000000").unwrap()
    }

    fn io(kind: ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    /// Another crate's error, with an io error as its source (as zip's and walkdir's have).
    #[derive(Debug)]
    struct Foreign(std::io::Error);

    impl std::fmt::Display for Foreign {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a dependency failed")
        }
    }

    impl StdError for Foreign {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    /// The name of every type of `src/` that derives `thiserror::Error`, outside unit tests.
    fn defined_error_types() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                let code = source.split("#[cfg(test)]\nmod tests").next().unwrap();
                let mut lines = code.lines();
                while let Some(line) = lines.next() {
                    if !(line.trim_start().starts_with("#[derive(")
                        && line.contains("thiserror::Error"))
                    {
                        continue;
                    }
                    let item = lines
                        .by_ref()
                        .map(|l| {
                            l.trim()
                                .trim_start_matches("pub(crate) ")
                                .trim_start_matches("pub ")
                        })
                        .find_map(|l| {
                            l.strip_prefix("enum ")
                                .or_else(|| l.strip_prefix("struct "))
                        })
                        .unwrap();
                    let name: String = item
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.insert(name);
                }
            }
        }
        names
    }

    #[test]
    fn every_error_type_rewheel_defines_decides_its_code() {
        let defined = defined_error_types();
        assert!(
            defined.contains("StoreError") && defined.contains("BadCellId"),
            "{defined:?}"
        );
        let classified: BTreeSet<String> = TYPED
            .iter()
            .map(|ty| ty.rsplit("::").next().unwrap().trim().to_string())
            .collect();
        let missing: Vec<&String> = defined.difference(&classified).collect();
        assert!(
            missing.is_empty(),
            "error types no exit code is decided for: {missing:?}\nhint: add each to `Error` and to `typed_errors!` in src/errors.rs, and implement `Classify` for it"
        );
    }

    #[test]
    fn the_kind_of_error_decides_the_code() {
        let store = anyhow::Error::new(StoreError::Corrupt {
            path: "blob".into(),
            actual: crate::digest::Sha256::of(b"0"),
        });
        assert_eq!(code(store), ExitCode::Environment);
        let run = anyhow::Error::new(StoreError::NoRun(run_id()));
        assert_eq!(code(run), ExitCode::Input);
        let busy = anyhow::Error::new(StoreError::Busy {
            run: run_id(),
            holder: "process 1".into(),
            path: "live/x.lock".into(),
        });
        assert_eq!(code(busy), ExitCode::Input);
        let unreadable = anyhow::Error::new(StoreError::Unreadable {
            path: "runs.sqlite3".into(),
            why: "it is empty".into(),
        });
        assert_eq!(code(unreadable), ExitCode::Environment);
        let stopped = anyhow::Error::new(Interrupted).context("rebuilding six");
        assert_eq!(code(stopped), ExitCode::Interrupted);
        let full = anyhow::Error::new(io(ErrorKind::StorageFull)).context("writing a wheel");
        assert_eq!(code(full), ExitCode::Environment);
        let missing = anyhow::Error::new(io(ErrorKind::NotFound)).context("reading a lock");
        assert_eq!(code(missing), ExitCode::Input);
        let unknown = anyhow::Error::new(ImageError::Unknown("sid".into()));
        assert_eq!(code(unknown), ExitCode::Input);
        let opened = anyhow::Error::new(OpenError::Image(ImageError::Unknown("sid".into())));
        assert_eq!(code(opened), ExitCode::Input);
        let engine = anyhow::Error::new(OpenError::Image(ImageError::NoDebootstrap));
        assert_eq!(code(engine), ExitCode::Environment);
        assert_eq!(
            code(anyhow::anyhow!("a bad requirements line")),
            ExitCode::Input
        );
    }

    #[test]
    fn an_error_taken_at_the_edge_says_every_context_as_before() {
        let error = anyhow::Error::new(StoreError::NoRun(run_id()))
            .context("resuming")
            .context("rewheel build --resume x");
        let said = crate::exit::describe(&error);
        let taken = Error::from(error);
        let Error::Context { context, error } = &taken else {
            panic!("{taken:?}");
        };
        assert_eq!(context, &["rewheel build --resume x", "resuming"]);
        assert!(
            matches!(**error, Error::Store(StoreError::NoRun(_))),
            "{error:?}"
        );
        assert_eq!(taken.to_string(), said);
        assert_eq!(taken.exit_code(), ExitCode::Input);
    }

    #[test]
    fn what_no_type_of_rewheel_heads_is_unclassified_and_its_chain_decides() {
        let message = Error::from(anyhow::anyhow!("--job needs --plan FILE"));
        assert!(matches!(message, Error::Unclassified(_)));
        assert_eq!(message.exit_code(), ExitCode::Input);
        let full = Error::from(anyhow::Error::new(Foreign(io(ErrorKind::StorageFull))));
        assert!(matches!(full, Error::Unclassified(_)), "{full:?}");
        assert_eq!(full.exit_code(), ExitCode::Environment);
        assert_eq!(full.to_string(), "a dependency failed: no storage space");
        assert_eq!(Error::Usage("no".into()).exit_code(), ExitCode::Input);
    }

    #[test]
    fn a_repository_error_decides_bare_and_lets_what_it_wraps_decide_boxed() {
        let full = || crate::resolve::index::IndexError::Io {
            path: "cache/page".into(),
            source: io(ErrorKind::StorageFull),
        };
        assert_eq!(code(RepoError::Index(full()).into()), ExitCode::Input);
        let boxed = CellError::Repo {
            cell: "cp311".into(),
            source: Box::new(RepoError::Index(full())),
        };
        assert_eq!(code(boxed.into()), ExitCode::Environment);
        let planned = PlanError::Repo {
            cell: "cp311".into(),
            source: Box::new(RepoError::Index(full())),
        };
        assert_eq!(code(planned.into()), ExitCode::Input);
    }

    #[test]
    fn a_damaged_blob_met_while_comparing_is_the_environments() {
        let compared = crate::verify::compare::CompareError::Store(StoreError::Corrupt {
            path: "blob".into(),
            actual: crate::digest::Sha256::of(b"0"),
        });
        assert_eq!(
            code(anyhow::Error::new(compared).context("comparing")),
            ExitCode::Environment
        );
    }
}
