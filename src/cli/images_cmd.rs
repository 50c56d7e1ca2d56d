//! `rewheel images build|list`: build images offline (mmdebstrap or debootstrap, then import),
//! show them.

use super::args::ImagesCommand;
use crate::build::backend::docker::{build_images, list_images};
use crate::build::images::Ensured;
use crate::{errors::Error, exit::ExitCode};

pub(crate) fn run(command: ImagesCommand) -> Result<ExitCode, Error> {
    let short = |id: &str| id[..id.len().min(19)].to_string();
    match command {
        ImagesCommand::List => {
            for (image, id) in list_images()? {
                println!(
                    "{:<10} {:<28} {}",
                    image.name,
                    image.reference(),
                    id.as_deref().map(short).as_deref().unwrap_or("not built")
                );
            }
        }
        ImagesCommand::Build {
            names,
            scratch,
            force,
        } => build_images(&names, &scratch, force, |image, ensured| match ensured {
            Ensured::Present(id) => {
                println!("{}: already built ({})", image.reference(), short(id))
            }
            Ensured::Built { id, seconds, layer } => println!(
                "{}: built in {seconds:.0} s ({}){}",
                image.reference(),
                short(id),
                layer
                    .as_deref()
                    .map(|l| format!(", layer {l}"))
                    .unwrap_or_default()
            ),
        })?,
    }
    Ok(ExitCode::Success)
}
