//! `rewheel images build|list`: build images offline (debootstrap + import), show them.

use super::args::ImagesCommand;
use crate::build::backend::docker::DockerBackend;
use crate::build::images::Image;
use crate::exit;
use anyhow::Context;
use std::time::Instant;

pub(crate) fn run(command: ImagesCommand) -> anyhow::Result<u8> {
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
                let images: Vec<Image> = if names.is_empty() {
                    Image::all()
                } else {
                    names
                        .iter()
                        .map(|n| Image::named(n))
                        .collect::<Result<_, _>>()?
                };
                std::fs::create_dir_all(&scratch)
                    .with_context(|| format!("cannot create {}", scratch.display()))?;
                for image in images {
                    if !force && let Some(id) = image.id(&docker).await {
                        println!(
                            "{}: already built ({})",
                            image.reference(),
                            &id[..id.len().min(19)]
                        );
                        continue;
                    }
                    let start = Instant::now();
                    let log = scratch.join(format!("{}.log", image.name));
                    eprintln!(
                        "{}: debootstrap {} (log: {})",
                        image.reference(),
                        image.recipe.suite,
                        log.display()
                    );
                    let id = image.build(&docker, &scratch, &log).await?;
                    println!(
                        "{}: built in {:.0} s ({})",
                        image.reference(),
                        start.elapsed().as_secs_f64(),
                        &id[..id.len().min(19)]
                    );
                }
            }
        }
        Ok(exit::SUCCESS)
    })
}
