//! `opsd check` for an `ec2` job: a warning when the AWS shared credentials or config file the
//! SDK reads for the user running check (`$AWS_SHARED_CREDENTIALS_FILE`, `$AWS_CONFIG_FILE`,
//! else `~/.aws/credentials` and `~/.aws/config`) is one the unit hides: `credentials: OK`
//! from the preflight then holds for check and not for the daemon.

use crate::jobs::check::{CheckContext, Finding, Place, Section, Verdict};
use std::path::PathBuf;

/// A warning for each AWS file check's credential chain reads that the daemon cannot see.
pub fn check(ctx: &CheckContext) -> Vec<Finding> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(named) => Some((PathBuf::from(named), format!("${var}"))),
        None => home
            .as_ref()
            .map(|h| h.join(".aws").join(default))
            .filter(|p| p.exists())
            .map(|p| (p, "the default".to_string())),
    };
    [
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        file("AWS_CONFIG_FILE", "config"),
    ]
    .into_iter()
    .flatten()
    .filter_map(|(path, why)| {
        let hidden_by = (ctx.hidden_by)(&path)?;
        Some(Finding {
            verdict: Verdict::Warning,
            section: Section::Hidden,
            key: "",
            place: Place::File,
            message: format!(
                "the AWS file the credential chain reads here ({why}), {}, is hidden from the \
                 daemon by {hidden_by}, so what check found is not what the daemon will find; \
                 give the daemon its own credentials: an EnvironmentFile= drop-in (0600 root), \
                 LoadCredential= with AWS_SHARED_CREDENTIALS_FILE under $CREDENTIALS_DIRECTORY, \
                 or an instance profile (docs/ec2.md)",
                crate::escape::control(&path.to_string_lossy())
            ),
        })
    })
    .collect()
}
