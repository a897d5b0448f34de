//! The TOML of an import (a jobs.d drop-in that `opsd check` accepts, a comment per job naming
//! its source line) and the report of what was not mapped.

use super::{Command, Import, Job};
use std::fmt::Write;

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A job name as a TOML key: bare when it can be, quoted when it has a `.`.
fn key(name: &str) -> String {
    if name.contains('.') {
        quoted(name)
    } else {
        name.to_string()
    }
}

/// A sink name for a MAILTO address.
fn sink_name(address: &str) -> String {
    let mut s: String = address
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(50);
    format!("mail-{}", s.trim_matches('-'))
}

/// The drop-in: a header saying what was imported and how much, the MAILTO sink stubs, then
/// each job under its source comment.
pub fn render(import: &Import, what: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported by `opsd import {what}`: {} job(s); {} line(s) not mapped{}.",
        import.jobs.len(),
        import.reports.len(),
        if import.reports.is_empty() {
            ""
        } else {
            " (listed below)"
        }
    );
    if import.jobs.iter().any(|j| !j.anacron) {
        let _ = writeln!(
            out,
            "# cron starts a run even while the last one goes on, so its jobs have overlap = \"allow\"."
        );
    }
    if import.jobs.iter().any(|j| j.anacron) {
        let _ = writeln!(
            out,
            "# anacron never runs a job twice at once and runs what it missed, so its jobs have \
             overlap = \"skip\" and catch_up = \"once\"."
        );
    }
    for r in &import.reports {
        let _ = writeln!(out, "#   not mapped: {}: {}", r.source, one_line(&r.why));
    }
    let mut seen = Vec::new();
    for (address, source) in &import.mailtos {
        if seen.contains(address) {
            continue;
        }
        seen.push(address.clone());
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# {source}: MAILTO={address}: cron mailed the output of the jobs after it to {address}."
        );
        let _ = writeln!(
            out,
            "# opsd alerts through sinks instead; a drop-in cannot declare one, so complete this one in the"
        );
        let _ = writeln!(
            out,
            "# job file (a program that gets each alert as a JSON line on stdin) and uncomment the jobs' alert:"
        );
        let _ = writeln!(out, "# [alerts.{}]", sink_name(address));
        let _ = writeln!(out, "# type = \"command\"");
        let _ = writeln!(
            out,
            "# command = [\"/usr/local/bin/mail-alert\", {}]",
            quoted(address)
        );
    }
    for job in &import.jobs {
        out.push('\n');
        job_toml(job, &mut out);
    }
    out
}

/// `text` on one line (a comment cannot hold a newline).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn job_toml(job: &Job, out: &mut String) {
    if job.source.line > 0 {
        let _ = writeln!(
            out,
            "# {}: {}",
            job.source,
            one_line(job.source.text.trim())
        );
    }
    for note in &job.notes {
        let _ = writeln!(out, "# {}", one_line(note));
    }
    let _ = writeln!(out, "[jobs.{}]", key(&job.name));
    let _ = writeln!(out, "type = \"command\"");
    let _ = writeln!(out, "schedule = {}", quoted(&job.schedule));
    let _ = writeln!(out, "timezone = {}", quoted(job.timezone.name()));
    if job.anacron {
        let _ = writeln!(out, "overlap = \"skip\"");
        let _ = writeln!(out, "catch_up = \"once\"");
    } else {
        let _ = writeln!(out, "overlap = \"allow\"");
    }
    if let Some(m) = job.jitter_minutes {
        let _ = writeln!(out, "jitter = \"{m}m\"");
    }
    if let Some(user) = &job.user {
        let _ = writeln!(out, "user = {}", quoted(user));
    }
    if let Some(dir) = &job.working_dir {
        let _ = writeln!(out, "working_dir = {}", quoted(dir));
    }
    match &job.command {
        Command::Shell(line) => {
            let _ = writeln!(out, "command = {}", quoted(line));
        }
        Command::Argv(argv) => {
            let items: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
            let _ = writeln!(out, "command = [{}]", items.join(", "));
        }
    }
    if !job.env.is_empty() {
        let items: Vec<String> = job
            .env
            .iter()
            .map(|(k, v)| format!("{k} = {}", quoted(v)))
            .collect();
        let _ = writeln!(out, "env = {{ {} }}", items.join(", "));
    }
    if let Some(m) = &job.mailto {
        let _ = writeln!(out, "# alert = [{}]  # MAILTO={m}", quoted(&sink_name(m)));
    }
}

/// The report for stderr (or `--check`): each line not mapped and each note, with its place.
pub fn report_text(import: &Import) -> String {
    let mut out = String::new();
    for r in &import.reports {
        let _ = writeln!(out, "{}: not mapped: {}", r.source, r.why);
    }
    for n in &import.notes {
        let _ = writeln!(out, "{}: note: {}", n.source, n.text);
    }
    out
}
