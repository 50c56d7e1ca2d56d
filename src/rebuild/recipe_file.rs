//! The recipe `rebuild` found, written as files `rewheel build`/`check` take: a matrix file
//! (the cell, the requirement, the build constraints, the package's settings) beside a
//! requirements file and a constraints file.

use crate::cell::Cell;
use crate::rebuild::infer::{Guess, frozen};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// Write `<dir>/<stem>.toml` (the matrix), `<stem>-requirements.txt` and, with pins,
/// `<stem>-constraints.txt`. Returns the matrix file.
pub fn write(
    matrix: &Path,
    (name, version): (&str, &str),
    guess: &Guess,
    cell: &Cell,
    exclude_newer: Option<&Timestamp>,
    reproduced: bool,
    shared_env: &[String],
) -> std::io::Result<PathBuf> {
    let dir = matrix.parent().unwrap_or(Path::new("."));
    let stem = matrix
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(dir)?;
    let requirements = format!("{stem}-requirements.txt");
    std::fs::write(dir.join(&requirements), format!("{name}=={version}\n"))?;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut text = format!(
        "# How {name} {version} was rebuilt by `rewheel rebuild` ({}).\n\
         # Build it again with: rewheel build --matrix {}{}{}\n",
        if reproduced {
            "bit for bit"
        } else {
            "the closest attempt, not identical"
        },
        matrix.display(),
        guess
            .build_path
            .as_ref()
            .map(|p| format!(" --build-path {p}"))
            .unwrap_or_default(),
        exclude_newer
            .map(|t| format!(" --exclude-newer {t}"))
            .unwrap_or_default()
    );
    for reason in &guess.reasons {
        text.push_str(&format!("#   {reason}\n"));
    }
    text.push_str(&format!("requirements = [{}]\n", quote(&requirements)));
    if !guess.pins.is_empty() {
        let constraints = format!("{stem}-constraints.txt");
        std::fs::write(dir.join(&constraints), guess.pins.join("\n") + "\n")?;
        text.push_str(&format!("build-constraints = [{}]\n", quote(&constraints)));
    }
    text.push_str(&format!(
        "\n[cells.{}]\npython = {}\n",
        cell.id,
        quote(&cell.python)
    ));
    if let Some(image) = &cell.image {
        text.push_str(&format!("image = {}\n", quote(image)));
    }
    // A supplied image by the reference it had here: whoever rebuilds needs the same image
    // (the statement names its id).
    for (key, value) in [
        ("supplied-image", &cell.supplied_image),
        ("interpreter", &cell.interpreter),
        ("repair", &cell.repair),
    ] {
        if let Some(value) = value {
            text.push_str(&format!("{key} = {}\n", quote(value)));
        }
    }
    text.push_str(&format!(
        "\n[packages.{name}]\numask = {}\n",
        quote(&format!("{:03o}", guess.umask))
    ));
    if guess.sdist_times {
        text.push_str("sdist-times = true\n");
    }
    if let Some(pin) = crate::rebuild::infer::own_backend(guess, name) {
        text.push_str(&format!("backend = {}\n", quote(pin)));
    }
    if guess.pins_over_sdist {
        let pins: Vec<String> = guess.pins.iter().map(|p| quote(p)).collect();
        text.push_str(&format!("shared-env = [{}]\n", pins.join(", ")));
    }
    if let Some(options) = &guess.setup_py {
        let options: Vec<String> = options.iter().map(|o| quote(o)).collect();
        text.push_str(&format!("setup-py = [{}]\n", options.join(", ")));
    }
    if let Some(order) = &guess.listing_order {
        text.push_str(&format!("listing-order = {}\n", quote(order)));
    }
    if let Some(t) = guess.frozen_clock {
        let clock = frozen(t, guess.timezone.as_deref());
        text.push_str(&format!("clock = {}\n", quote(&clock)));
    }
    let mut env = Vec::new();
    if let Some(zone) = &guess.timezone {
        env.push(format!("TZ = {}", quote(zone)));
    }
    if let Some(epoch) = guess.source_date_epoch {
        env.push(format!("SOURCE_DATE_EPOCH = {}", quote(&epoch.to_string())));
    }
    for (switch, value) in &guess.env {
        // A key as TOML reads one: bare when plain, else quoted (a statement's recipe is
        // someone else's, and its keys must not become other keys).
        let plain = !switch.is_empty()
            && switch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        let key = if plain { switch.clone() } else { quote(switch) };
        env.push(format!("{key} = {}", quote(value)));
    }
    if !env.is_empty() {
        text.push_str(&format!("env = {{ {} }}\n", env.join(", ")));
    }
    if !shared_env.is_empty() {
        // The toolchain it was built in, as the run's settings named it.
        let pins: Vec<String> = shared_env.iter().map(|p| quote(p)).collect();
        text.push_str(&format!(
            "\n[defaults]\nshared-env = [{}]\n",
            pins.join(", ")
        ));
    }
    text.push_str(crate::rebuild::infer::legacy_toolchain(guess));
    std::fs::write(matrix, text)?;
    Ok(matrix.to_path_buf())
}
