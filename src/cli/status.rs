//! `opsd status`: each job's schedule, next and last run (the table is in `table.rs`), or one
//! job's last run in full with NAME.

use super::control::unexpected;
use super::show::{detail_text, print_json, print_output};
use crate::control::{client, Request, Response};
use crate::scheduler::JobStatus;
use std::path::Path;
use std::process::ExitCode;

/// Asks the daemon for the jobs' status and prints the table, one job (`name`) or JSON.
pub(super) fn run(name: Option<String>, socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    match client::call(socket, &Request::Status)? {
        Response::Status { config, jobs } if name.is_some() => {
            let name = name.unwrap_or_default();
            let Some(job) = jobs.iter().find(|j| j.name == name) else {
                let hint =
                    crate::field::did_you_mean_hint(&name, jobs.iter().map(|j| j.name.as_str()))
                        .unwrap_or_default();
                anyhow::bail!(
                    "no job named {name:?} in the loaded job files ({} and its \
                     jobs.d/*.toml){hint}",
                    crate::escape::control(&config)
                );
            };
            if json {
                print_json(&serde_json::json!(job));
            } else {
                print_job_status(job);
            }
        }
        Response::Status { config, jobs } if json => {
            print_json(&serde_json::json!({ "config": config, "jobs": jobs }));
        }
        Response::Status { config, jobs } => super::table::print_status(&config, &jobs),
        other => return Err(unexpected(other)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `opsd status NAME`: one job, its last run and the last lines that run printed.
fn print_job_status(j: &JobStatus) {
    use crate::escape::control;
    println!("{} ({})", control(&j.name), control(&j.job_type));
    match (&j.schedule, &j.timezone) {
        (Some(s), Some(z)) => println!("  schedule: {} ({})", control(s), control(z)),
        _ => println!("  schedule: continuous"),
    }
    match j.next {
        Some(t) => println!("  next:     {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
        None if !j.enabled => println!("  next:     disabled"),
        None => println!("  next:     -"),
    }
    if j.running > 0 {
        println!("  running:  yes ({})", j.running);
    }
    if let Some(live) = &j.live {
        print_live(live);
    }
    let Some(l) = &j.last else {
        println!("  last run: none yet");
        return;
    };
    println!(
        "  last run: {} {} ({} ms, run {}){}",
        l.started.format("%Y-%m-%d %H:%M:%S UTC"),
        l.outcome,
        l.duration_ms,
        control(&l.run_id),
        detail_text(l.detail.as_deref())
    );
    if l.output.is_empty() {
        println!("  (no output)");
    } else {
        print_output(&l.output);
    }
}

/// Prints what the run going now published about itself, one labelled value a line. The
/// time is when a figure last changed (a job republishes only then), not when it last looked:
/// a quiet watch shows an old time while it keeps polling.
fn print_live(live: &crate::jobs::LiveStatus) {
    println!(
        "  now:      figures last changed {}",
        live.updated.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let width = live
        .fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    for (label, value) in &live.fields {
        let label = format!("{}:", crate::escape::control(label));
        println!("    {label:<width$} {}", crate::escape::control(value));
    }
}
