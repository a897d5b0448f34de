//! `opsd fleet status`: the fleet of the job file's `[fleet]`, read from etcd directly (no
//! daemon needed): every host registered now, and each fleet job's next slot, the run going
//! now and where, and its last run, where it ran and how it ended.

use super::job_file::load_config;
use super::ConfigArg;
use clap::Subcommand;
use std::process::ExitCode;

/// `opsd fleet ...`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// List the fleet's hosts and each fleet job's next slot and last run (where, how it ended).
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `opsd fleet` subcommand.
pub(super) fn run(command: FleetCommand) -> anyhow::Result<ExitCode> {
    let FleetCommand::Status { config, json } = command;
    let cfg = load_config(&config.config)?;
    let Some(settings) = cfg.fleet.as_ref() else {
        anyhow::bail!(
            "{} has no [fleet] section: this host is not part of a fleet (see docs/fleet.md)",
            config.config.display()
        );
    };
    let etcd = crate::fleet::client(settings).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime
        .block_on(crate::fleet::status::read(&etcd, &cfg))
        .map_err(|e| anyhow::anyhow!("fleet status: {e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    println!("{:<20} {:<10} {:<24} LAST SEEN", "HOST", "VERSION", "SINCE");
    for h in &status.hosts {
        println!(
            "{:<20} {:<10} {:<24} {}",
            h.host,
            h.version,
            when(h.since),
            when(h.last_seen)
        );
    }
    println!();
    println!(
        "{:<24} {:<24} {:<20} {:<24} {:<12} OUTCOME",
        "JOB", "NEXT", "RUNNING ON", "LAST SLOT", "LAST HOST"
    );
    for j in &status.jobs {
        let next = j.next.map(when).unwrap_or_else(|| "-".into());
        let running = j
            .running
            .as_ref()
            .map_or("-".to_string(), |(h, _)| h.clone());
        let (slot, host, outcome) = match &j.last {
            Some(l) => (when(l.slot), l.host.clone(), l.outcome.clone()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<24} {next:<24} {running:<20} {slot:<24} {host:<12} {outcome}",
            j.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
