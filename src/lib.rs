//! opsd: a second-precision ops scheduler daemon. The binary (`src/main.rs`) is a thin shell
//! over this library so tests can drive every part.
//!
//! # Layout
//!
//! Data flows one way: config → schedule → scheduler → job → outcome → log, alert, state.
//! Read the modules in that order:
//!
//! - [`cli`]: the command line, one file per subcommand; `opsd run` hands over to [`daemon`],
//!   the main loop (signals, reloads, the [`control`] socket, [`systemd`] notifications).
//! - [`config`]: `jobs.toml` and `jobs.d/*.toml` read into a [`config::Config`], every problem
//!   located by file, line and key. It names no job type: a job's own keys go to its type's row
//!   in [`jobs::REGISTRY`], an `[alerts.NAME]` table to its row in [`alert::sink::TYPES`].
//! - [`schedule`]: when a job fires (cron, `@every`, `@start`), in its zone.
//! - [`scheduler`]: a timer per job, overlap, jitter, catch-up, timeouts and reloads. It runs a
//!   job through [`jobs::JobType`] and never knows a type's details.
//! - [`jobs`]: the job types, a folder each (`jobs/ec2/` is the template: a small `mod.rs`,
//!   the spec, `kind.rs` with its registry row and [`jobs::JobSpec`] impl, its run, its
//!   `opsd check` part, tests). A job type never sees the scheduler.
//! - What the job types are built on: [`geoip`] (GeoLite2 CSV → legacy `.dat`), [`apache`]
//!   (error-log lines, following across rotation, rules, `opsd apache doctor`), [`tls`]
//!   (which TLS versions a server offers, its certificate chain, `opsd tls doctor`), [`process`] (spawning, the
//!   clean environment, a cgroup per run, reaping what a run left).
//! - [`import`]: `opsd import`, crontab, cron.d and anacron lines turned into command jobs
//!   (it uses [`schedule`] and [`field`] only).
//! - [`alert`]: the alert record, the sinks (each type's folder owning its config and its
//!   delivery) and the dispatcher that delivers with retries and cooldowns; [`logging`] (text
//!   or journald); [`state`] (files under the state directory); [`metrics`] (Prometheus
//!   metrics over HTTP and in node_exporter's textfile, from the same job states as status).
//!
//! Leaves, which import nothing of ours and serve everyone: [`field`] (typed TOML fields,
//! located errors, did-you-mean), [`escape`], [`redact`], [`severity`], [`account`],
//! [`atomic_file`], [`bounded_read`], [`generation`] (the change counter behind the metrics'
//! incremental scrape); [`command_line`] leans on [`field`] alone. No module
//! imports one that imports it back: `.ci/import-cycles` fails CI on a circle.
//!
//! Adding a job type touches its folder under `jobs/` (a `KIND` row, a `JobSpec` impl), one
//! line in [`jobs::REGISTRY`], one variant of [`jobs::JobType`] with its arm in
//! [`jobs::JobType::as_spec`], and its page in `docs/`.

pub mod account;
pub mod alert;
pub mod apache;
pub mod atomic_file;
pub mod bounded_read;
pub mod cli;
pub mod command_line;
pub mod config;
pub mod control;
pub mod daemon;
pub mod escape;
pub mod field;
pub mod fleet;
pub mod generation;
pub mod geoip;
pub mod import;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod redact;
pub mod schedule;
pub mod scheduler;
pub mod severity;
pub mod state;
pub mod systemd;
pub mod tls;
