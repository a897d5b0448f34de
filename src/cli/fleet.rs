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
    print!("{}", table(&status));
    Ok(ExitCode::SUCCESS)
}

/// The tables of `status`, every string read from etcd escaped (another host wrote it).
fn table(status: &crate::fleet::status::FleetStatus) -> String {
    let mut out = String::new();
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    out.push_str(&format!(
        "{:<20} {:<10} {:<24} LAST SEEN\n",
        "HOST", "VERSION", "SINCE"
    ));
    for h in &status.hosts {
        out.push_str(&format!(
            "{:<20} {:<10} {:<24} {}\n",
            shown(&h.host),
            shown(&h.version),
            when(h.since),
            when(h.last_seen)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<24} {:<24} {:<20} {:<24} {:<12} OUTCOME\n",
        "JOB", "NEXT", "RUNNING ON", "LAST SLOT", "LAST HOST"
    ));
    for j in &status.jobs {
        let next = j.next.map(when).unwrap_or_else(|| "-".into());
        let running = j
            .running
            .as_ref()
            .map_or("-".to_string(), |(h, _)| shown(h));
        let (slot, host, outcome) = match &j.last {
            Some(l) => (when(l.slot), shown(&l.host), shown(&l.outcome)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "{:<24} {next:<24} {running:<20} {slot:<24} {host:<12} {outcome}\n",
            j.name
        ));
    }
    out
}

/// `text` read from etcd, its control characters escaped so it cannot forge terminal output.
fn shown(text: &str) -> String {
    crate::escape::control(text).into_owned()
}

#[cfg(test)]
mod tests {
    use crate::fleet::registration::HostRecord;
    use crate::fleet::status::FleetStatus;

    /// A host record written by another host must not put escapes on this terminal (before,
    /// the table printed etcd's strings as they were).
    #[test]
    fn status_escapes_what_etcd_holds() {
        let now = chrono::Utc::now();
        let status = FleetStatus {
            hosts: vec![HostRecord {
                host: "web\u{1b}[2J".into(),
                version: "1\nfake row".into(),
                since: now,
                last_seen: now,
            }],
            jobs: Vec::new(),
        };
        let out = super::table(&status);
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(
            out.contains("web\\u{1b}[2J") && out.contains("1\\nfake row"),
            "{out:?}"
        );
    }
}
