//! `opsd import crontab|cron-d|anacron`: reads cron's files, writes a jobs.d drop-in on stdout
//! and says on stderr what was not mapped and why (`--check`: the report alone, on stdout).
//! Exit 0 when every line was mapped, 1 when some were not (the drop-in is still written).

use crate::import::{self, Import, Options, Script};
use anyhow::Context;
use chrono_tz::Tz;
use clap::{Args, Subcommand};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What to import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A user's crontab (`crontab -l > FILE`), or `-` for stdin: no user field.
    Crontab {
        /// The crontab file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// The user the crontab belonged to (the jobs' `user`).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        #[command(flatten)]
        zones: Zones,
    },
    /// `/etc/crontab` or `/etc/cron.d` files (a directory or files): a user field per line.
    CronD {
        /// Files, or directories whose files cron reads (names of letters, digits, `_`, `-`).
        #[arg(default_value = "/etc/cron.d")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        zones: Zones,
    },
    /// `/etc/anacrontab`, and the scripts of the directories it hands to run-parts.
    Anacron {
        /// The anacrontab.
        #[arg(default_value = "/etc/anacrontab")]
        file: PathBuf,
        /// The system crontab, which says when `/etc/cron.daily` and the like run (default:
        /// etc/crontab below --root).
        #[arg(long, value_name = "FILE")]
        crontab: Option<PathBuf>,
        /// Where the directories the anacrontab names are (a mounted disk of the old
        /// machine); the jobs keep the paths as the anacrontab names them.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        #[command(flatten)]
        zones: Zones,
    },
}

/// The zone flags every import takes, and `--check`.
#[derive(Debug, Args)]
pub struct Zones {
    /// The zone cron ran in (default: this machine's).
    #[arg(long, value_name = "TZ")]
    zone: Option<Tz>,
    /// Rewrite the schedules into this zone where that is exactly equivalent (undoes a
    /// hand conversion: `--zone UTC --rezone Asia/Seoul`).
    #[arg(long, value_name = "TZ")]
    rezone: Option<Tz>,
    /// Report only: what maps (to which job, schedule and zone), what does not, and why.
    #[arg(long)]
    check: bool,
}

impl Zones {
    fn options(&self, user: Option<String>, user_field: bool) -> Options {
        Options {
            zone: self.zone.unwrap_or_else(crate::config::system_timezone),
            rezone: self.rezone,
            user,
            user_field,
            start: chrono::Utc::now(),
        }
    }
}

/// Runs one `opsd import` subcommand.
pub(super) fn run(command: ImportCommand) -> anyhow::Result<ExitCode> {
    let mut out = Import::default();
    let (what, check) = match &command {
        ImportCommand::Crontab { file, user, zones } => {
            let text = read(file)?;
            let name = if file == Path::new("-") {
                "stdin".into()
            } else {
                shown(file)
            };
            import::import_crontab(&text, &name, &zones.options(user.clone(), false), &mut out);
            ("crontab", zones.check)
        }
        ImportCommand::CronD { paths, zones } => {
            let opts = zones.options(None, true);
            for path in paths {
                cron_d(path, &opts, &mut out)?;
            }
            ("cron-d", zones.check)
        }
        ImportCommand::Anacron {
            file,
            crontab,
            root,
            zones,
        } => {
            let text = read(file)?;
            let crontab = crontab.clone().unwrap_or_else(|| root.join("etc/crontab"));
            let system = read(&crontab).ok();
            let crontab_name = shown(&crontab);
            let list = |dir: &Path| list_scripts(&root.join(dir.strip_prefix("/").unwrap_or(dir)));
            import::import_anacrontab(
                &text,
                &shown(file),
                system.as_deref().map(|t| (t, crontab_name.as_str())),
                &list,
                &zones.options(None, false),
                &mut out,
            );
            ("anacron", zones.check)
        }
    };
    let report = import::report_text(&out);
    if check {
        for job in &out.jobs {
            println!(
                "{}: mapped to job {}: \"{}\" in {}",
                job.source,
                job.name,
                job.schedule,
                job.timezone.name()
            );
        }
        print!("{report}");
        println!(
            "{} mapped, {} not mapped",
            out.jobs.len(),
            out.reports.len()
        );
    } else {
        print!("{}", import::render(&out, what));
        eprint!("{report}");
    }
    Ok(if out.reports.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A path as given (relative paths stay relative, so comments say what the user typed).
fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The file's text, or stdin's for `-`. Bytes that are not UTF-8 become U+FFFD, so the
/// importer reports their lines (with their numbers) and maps the others.
fn read(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the crontab from stdin")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One cron.d path: a file, or a directory whose files cron would read (others reported).
fn cron_d(path: &Path, opts: &Options, out: &mut Import) -> anyhow::Result<()> {
    if !path.is_dir() {
        let text = read(path)?;
        import::import_crontab(&text, &shown(path), opts, out);
        return Ok(());
    }
    let mut names: Vec<String> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let file = path.join(&name);
        if name.starts_with('.') || file.is_dir() {
            continue;
        }
        if !import::run_parts_name(&name) {
            out.report_file(
                &shown(&file),
                "cron skips it: its name has characters other than letters, digits, `_` and `-`",
            );
            continue;
        }
        match read(&file) {
            Ok(text) => import::import_crontab(&text, &shown(&file), opts, out),
            Err(e) => out.report_file(&shown(&file), format!("{e:#}")),
        }
    }
    Ok(())
}

/// The scripts of a run-parts directory, with their execute bits.
fn list_scripts(dir: &Path) -> Result<Vec<Script>, String> {
    let mut scripts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        scripts.push(Script {
            name,
            executable: meta.permissions().mode() & 0o111 != 0,
        });
    }
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scripts)
}
