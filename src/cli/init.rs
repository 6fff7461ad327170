//! `s3fan init`: writes `s3fan.toml` from the flags given, checked as
//! deploy checks them, so the file it writes deploys.

use std::path::PathBuf;

use serde::Serialize;

use super::Stop;
use super::args::{InitArgs, Settings};
use super::config_file::{self, ConfigFile};
use crate::report::{Report, Verdict};

/// What `init` wrote.
#[derive(Serialize)]
pub struct Initialized {
    path: PathBuf,
    /// The keys written, in the file's order.
    keys: Vec<String>,
    /// An older file was there (`--force`).
    replaced: bool,
    /// The file was named by `--config` (or S3FAN_CONFIG).
    #[serde(skip)]
    given: bool,
}

impl Report for Initialized {
    fn render_text(&self) -> String {
        let config = if self.given {
            format!(" --config {}", self.path.display())
        } else {
            String::new()
        };
        format!(
            "{} {}: {}\nnext: s3fan{config} deploy --dry-run shows what deploy would make \
             (a flag given to any command wins over its key in the file)\n",
            if self.replaced { "replaced" } else { "wrote" },
            self.path.display(),
            self.keys.join(", "),
        )
    }

    fn verdict(&self) -> Verdict {
        Verdict::Done
    }
}

pub fn init(args: InitArgs, file: &ConfigFile) -> Result<Initialized, Stop> {
    let InitArgs {
        settings, force, ..
    } = args;
    let settings = settings
        .with_dest_from_environment()
        .map_err(|err| Stop::Usage(err.to_string()))?;
    if settings.source.is_none() || settings.dest.is_empty() {
        return Err(Stop::Usage(
            "s3fan init writes what deploy needs: pass --source SRC and --dest DST \
             (repeat --dest for more, or set S3FAN_SOURCE and S3FAN_DEST), and any \
             other flag of deploy to keep"
                .into(),
        ));
    }
    // The file must deploy: every value checked as deploy checks it.
    settings
        .clone()
        .spec(Settings::default())
        .map_err(|err| Stop::Usage(err.to_string()))?;
    let text = config_file::render(&settings).map_err(|err| Stop::Usage(err.to_string()))?;
    let path = file.path();
    let replaced = path.exists();
    if replaced && !force {
        return Err(Stop::Usage(format!(
            "{} already exists and was left as it is: edit it, or pass --force to replace it",
            path.display()
        )));
    }
    write_whole(&path, &text)?;
    let keys = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.to_owned()))
        .collect();
    Ok(Initialized {
        path,
        keys,
        replaced,
        given: matches!(file, ConfigFile::Given(_)),
    })
}

/// Writes beside the file, then renames it into place: a reader (or a
/// crash) never sees half a file, and an old one is only replaced whole.
fn write_whole(path: &std::path::Path, text: &str) -> Result<(), Stop> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, path));
    written.map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        Stop::Failed(format!("cannot write {}: {err}", path.display()))
    })
}
