//! `rewheel images build|list`: build images offline (debootstrap + import), show them.

use super::args::ImagesCommand;
use crate::build::backend::docker::DockerBackend;
use crate::build::images::{Ensured, Image};
use crate::{errors::Error, exit::ExitCode};
use anyhow::Context;

pub(crate) fn run(command: ImagesCommand) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let docker = DockerBackend::connect()
            .await
            .context("no Docker engine answers")?;
        match command {
            ImagesCommand::List => {
                for image in Image::all() {
                    let id = image.id(&docker).await;
                    println!(
                        "{:<10} {:<28} {}",
                        image.name,
                        image.reference(),
                        id.as_deref()
                            .map(|i| &i[..i.len().min(19)])
                            .unwrap_or("not built")
                    );
                }
            }
            ImagesCommand::Build {
                names,
                scratch,
                force,
            } => {
                for image in Image::selected(&names)? {
                    let short = |id: &str| id[..id.len().min(19)].to_string();
                    match image.ensure(&docker, &scratch, force).await? {
                        Ensured::Present(id) => {
                            println!("{}: already built ({})", image.reference(), short(&id))
                        }
                        Ensured::Built { id, seconds } => println!(
                            "{}: built in {seconds:.0} s ({})",
                            image.reference(),
                            short(&id)
                        ),
                    }
                }
            }
        }
        Ok(ExitCode::Success)
    })
}
