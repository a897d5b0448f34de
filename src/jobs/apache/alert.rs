//! The alert record of an `apache_log` event, carrying its rule's severity as it is (rules and
//! alerts share [`crate::severity::Severity`]), and for a child crash, advice that follows the
//! doctor's verdict and names the core.

use crate::alert::Alert;
use crate::apache::doctor::{Diagnosis, Verdict};
use crate::apache::rules::LogEvent;
use regex::Regex;
use std::sync::LazyLock;

/// The built-in rule whose alerts carry advice from the doctor's verdict.
const CHILD_CRASH: &str = "child_crash";

/// The alert record for one event; a child crash carries advice (in `extra`) that follows
/// the doctor's verdict for this server.
pub fn alert_for(job: &str, ev: &LogEvent, diagnosis: Option<&Diagnosis>) -> Alert {
    let summary = format!("{}{}", ev.summary, ev.suppressed_suffix());
    let alert = Alert::new(job, &ev.rule, ev.severity, summary)
        .with_count(u64::from(ev.count))
        .with_lines(ev.first_line.clone(), Some(ev.last_line.clone()))
        .with_source(ev.file.clone(), ev.dedup_key.clone());
    if ev.rule == CHILD_CRASH {
        alert.with_extra(crash_advice(ev, diagnosis))
    } else {
        alert
    }
}

/// `possible coredump in DIR`, as `AH00051` names where the crashed child's core went.
static CORE_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"AH00051: .*possible coredump in (\S+)").expect("constant regex compiles")
});

/// How to find the cause of a child crash that is not the known recipe.
pub const CORE_ADVICE: &str = "to find the cause, let the next crash leave a core: set \
    `CoreDumpDirectory /var/crash/apache2` (a directory the Apache user can write) and \
    `LimitCORE=infinity` in its unit; the crash line then reads `AH00051: ... possible coredump \
    in DIR`: open the core with `gdb /usr/sbin/apache2 DIR/core`";

/// The advice of a child-crash alert: the doctor's verdict for this server when it has one
/// (the php-fpm fix only when the server matches the recipe), then where the core is when the
/// crash line names one (`AH00051`), or else how to get one when the recipe is not the cause.
pub fn crash_advice(ev: &LogEvent, diagnosis: Option<&Diagnosis>) -> String {
    let core = CORE_PATH.captures(&ev.last_line).map(|c| {
        format!(
            "the child left a core in {dir} (AH00051): open it with `gdb /usr/sbin/apache2 {dir}/core`",
            dir = crate::escape::control(&c[1])
        )
    });
    let (verdict, known) = match diagnosis {
        Some(d) => (d.crash_advice(), d.verdict != Verdict::NoRecipe),
        None => (
            "the doctor has no verdict for this server: run `opsd apache doctor` to check for \
             the known mod_php + HTTP/2 recipe"
                .to_string(),
            false,
        ),
    };
    match core {
        Some(core) => format!("{verdict}; {core}"),
        None if known => verdict,
        None => format!("{verdict}; {CORE_ADVICE}"),
    }
}
