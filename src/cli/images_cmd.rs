//! `rewheel images build|list`: build images offline (mmdebstrap or debootstrap), show them.

use super::args::ImagesCommand;
use crate::build::backend::docker::{build_images, list_images};
use crate::build::images::short_id;
use crate::{errors::Error, exit::ExitCode};

pub(crate) fn run(command: ImagesCommand) -> Result<ExitCode, Error> {
    match command {
        ImagesCommand::List => {
            for (image, id) in list_images()? {
                let id = id.as_deref().map(short_id);
                let (name, reference) = (image.name, image.reference());
                println!("{name:<10} {reference:<28} {}", id.unwrap_or("not built"));
            }
        }
        ImagesCommand::Build {
            names,
            scratch,
            force,
        } => build_images(&names, &scratch, force, |image, ensured| {
            println!("{}: {}", image.reference(), ensured.describe())
        })?,
    }
    Ok(ExitCode::Success)
}
