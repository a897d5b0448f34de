//! What `opsd check` can tell about a `geoip` job before its first run: whether its license
//! key can be read and its output directory exists. No message ever holds the key.

use super::GeoipSpec;
use crate::geoip::install::{check_dir, InstallError};
use crate::geoip::license::{LicenseKey, LicenseKeyError, CREDENTIAL_NAME};
use crate::jobs::check::Verdict;
use std::io::ErrorKind;
use std::ops::Range;
use std::path::Path;

/// Where systemd puts the credentials of every service (`LoadCredential=`).
const SYSTEMD_CREDENTIALS: &str = "/run/credentials";

/// One thing `opsd check` looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it stops the job's runs.
    pub level: Verdict,
    /// The job's key it concerns, e.g. `output_dir`.
    pub key: &'static str,
    /// Where the key's value is in the job file; `None` when the job leaves the key out.
    pub span: Option<Range<usize>>,
    /// What check found, without the license key.
    pub message: String,
}

impl Finding {
    fn new(level: Verdict, key: &'static str, span: Option<Range<usize>>, message: String) -> Self {
        Finding {
            level,
            key,
            span,
            message,
        }
    }
}

/// Checks the license key source and the output directory of `spec` as the daemon would find
/// them now; `credentials_dir` is `$CREDENTIALS_DIRECTORY` (set under systemd only).
pub fn preflight(spec: &GeoipSpec, credentials_dir: Option<&Path>) -> Vec<Finding> {
    vec![license_key(spec, credentials_dir), output_dir(spec)]
}

/// The license key: the configured file, else the systemd credential.
fn license_key(spec: &GeoipSpec, credentials_dir: Option<&Path>) -> Finding {
    const KEY: &str = "license_key_file";
    let Some(file) = &spec.license_key_file else {
        let Some(dir) = credentials_dir else {
            return Finding::new(
                Verdict::Warning,
                KEY,
                None,
                format!(
                    "not set, so the key must come from systemd (LoadCredential={CREDENTIAL_NAME}:/path/to/key \
                     in the unit); not checked: $CREDENTIALS_DIRECTORY is not set here"
                ),
            );
        };
        return match LicenseKey::load_from(None, Some(dir)) {
            Ok(_) => Finding::new(
                Verdict::Ok,
                KEY,
                None,
                format!("OK (systemd credential {CREDENTIAL_NAME})"),
            ),
            Err(e) => Finding::new(Verdict::Error, KEY, None, e.to_string()),
        };
    };
    let (path, span) = (file.get_ref(), Some(file.span()));
    let (level, message) = match LicenseKey::load_from(Some(path), None) {
        Ok(_) => (Verdict::Ok, format!("OK ({})", path.display())),
        Err(LicenseKeyError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
            let from_systemd = path.starts_with(SYSTEMD_CREDENTIALS)
                || credentials_dir.is_some_and(|d| path.starts_with(d));
            if from_systemd {
                (
                    Verdict::Warning,
                    format!(
                        "{} does not exist here; it is a systemd credential, present only while \
                         the service runs",
                        path.display()
                    ),
                )
            } else {
                (
                    Verdict::Error,
                    format!(
                        "{} does not exist; every run fails until it holds the MaxMind license key",
                        path.display()
                    ),
                )
            }
        }
        Err(LicenseKeyError::Read { source, .. })
            if source.kind() == ErrorKind::PermissionDenied =>
        {
            (
                Verdict::Warning,
                format!(
                    "{} cannot be read by uid {} (permission denied); the user opsd runs as \
                     must be able to read it",
                    path.display(),
                    nix::unistd::geteuid()
                ),
            )
        }
        Err(e) => (Verdict::Error, e.to_string()),
    };
    Finding::new(level, KEY, span, message)
}

/// The output directory must exist: the job never creates it.
fn output_dir(spec: &GeoipSpec) -> Finding {
    const KEY: &str = "output_dir";
    let (dir, span) = (spec.output_dir.get_ref(), Some(spec.output_dir.span()));
    match check_dir(dir) {
        Ok(()) => Finding::new(Verdict::Ok, KEY, span, format!("OK ({})", dir.display())),
        Err(e @ (InstallError::MissingDir(_) | InstallError::NotADir(_))) => {
            Finding::new(Verdict::Error, KEY, span, e.to_string())
        }
        Err(e) => Finding::new(
            Verdict::Warning,
            KEY,
            span,
            format!("cannot check as uid {}: {e}", nix::unistd::geteuid()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(_dir: &Path, key_file: Option<&Path>, output_dir: &Path) -> GeoipSpec {
        let key = key_file
            .map(|k| format!("license_key_file = {:?}\n", k.display().to_string()))
            .unwrap_or_default();
        toml::from_str(&format!(
            "account_id = 1\n{key}editions = [\"GeoLite2-Country-CSV\"]\noutput_dir = {:?}\n",
            output_dir.display().to_string()
        ))
        .unwrap()
    }

    #[test]
    fn missing_key_file_and_output_dir_are_errors_and_the_key_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("maxmind.key");
        let out = dir.path().join("GeoIP");
        let found = preflight(&spec(dir.path(), Some(&key), &out), None);
        assert_eq!(found[0].level, Verdict::Error, "{found:?}");
        assert_eq!(found[0].key, "license_key_file");
        assert!(found[0].span.is_some());
        assert!(found[0].message.contains("does not exist"), "{found:?}");
        assert_eq!(found[1].level, Verdict::Error, "{found:?}");
        assert!(found[1].message.contains("does not exist"), "{found:?}");

        std::fs::create_dir(&out).unwrap();
        std::fs::write(&key, "s3cretKEY_0123\n").unwrap();
        let found = preflight(&spec(dir.path(), Some(&key), &out), None);
        assert!(found.iter().all(|f| f.level == Verdict::Ok), "{found:?}");
        std::fs::write(&key, "s3cret KEY\n").unwrap();
        let found = preflight(&spec(dir.path(), Some(&key), &out), None);
        assert_eq!(found[0].level, Verdict::Error, "{found:?}");
        for f in &found {
            assert!(!f.message.contains("s3cret"), "the key leaked: {f:?}");
        }
    }

    #[test]
    fn a_systemd_credential_is_a_warning_when_absent_here() {
        let dir = tempfile::tempdir().unwrap();
        let found = preflight(&spec(dir.path(), None, dir.path()), None);
        assert_eq!(found[0].level, Verdict::Warning, "{found:?}");
        assert!(found[0].span.is_none());
        let cred = Path::new("/run/credentials/opsd.service/maxmind-license");
        let found = preflight(&spec(dir.path(), Some(cred), dir.path()), None);
        assert_eq!(found[0].level, Verdict::Warning, "{found:?}");
        let found = preflight(&spec(dir.path(), None, dir.path()), Some(dir.path()));
        assert_eq!(found[0].level, Verdict::Error, "{found:?}");
        std::fs::write(dir.path().join(CREDENTIAL_NAME), "k3y\n").unwrap();
        let found = preflight(&spec(dir.path(), None, dir.path()), Some(dir.path()));
        assert_eq!(found[0].level, Verdict::Ok, "{found:?}");
    }
}
