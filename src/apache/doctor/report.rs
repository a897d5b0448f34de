//! Rendering a [`Diagnosis`]: the full text report of `opsd apache doctor` (each ingredient,
//! the verdict, the options), and the one-line summary and crash advice that logs and
//! child-crash alerts quote. Nothing here judges; the verdict is [`super::analyse`]'s.

use super::analyse::{Diagnosis, Presence, Verdict};
use std::fmt;

impl Diagnosis {
    /// The verdict in one line, for alerts and logs.
    pub fn summary(&self) -> String {
        let server = self.setup.server_version.as_deref().unwrap_or("Apache");
        let mpm = self.setup.mpm.as_deref().unwrap_or("unknown");
        match self.verdict {
            Verdict::Recipe => format!(
                "opsd apache doctor: {server} matches the known child-crash recipe ({mpm} MPM + mod_php + HTTP/2 over TLS, {}); \
                 stopgap: H2MaxWorkers 1; fix: event MPM + proxy_fcgi + php-fpm; or prefork (HTTP/2 off)",
                self.setup.h2_max_workers.last().map_or_else(
                    || "no H2MaxWorkers".to_string(),
                    |l| format!("{} at {}:{} is too high to be the stopgap", l.text, l.file.display(), l.line)
                )
            ),
            Verdict::Mitigated => format!(
                "opsd apache doctor: {server} has the child-crash recipe ({mpm} MPM + mod_php + HTTP/2) with the H2MaxWorkers stopgap; \
                 the fix is event MPM + proxy_fcgi + php-fpm"
            ),
            Verdict::NoRecipe => {
                let missing: Vec<&str> = self
                    .checks
                    .iter()
                    .filter(|c| c.present != Presence::Yes)
                    .map(|c| c.ingredient)
                    .collect();
                format!(
                    "opsd apache doctor: {server} does not match the known child-crash recipe (missing: {})",
                    missing.join("; ")
                )
            }
        }
    }

    /// What the verdict means for a child crash on this server: the recipe's fix when it
    /// matches, and when it does not, that php-fpm is not the known fix here.
    pub fn crash_advice(&self) -> String {
        match self.verdict {
            Verdict::Recipe => self.summary(),
            Verdict::Mitigated => format!(
                "{}; it crashed anyway: lower H2MaxWorkers to 1 or move PHP to php-fpm",
                self.summary()
            ),
            Verdict::NoRecipe => {
                format!("{}, so php-fpm is not the known fix here", self.summary())
            }
        }
    }
}

impl fmt::Display for Diagnosis {
    /// The full report: each ingredient, the verdict, and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Apache child-crash recipe check (2.4.27+, threaded MPM + mod_php + HTTP/2):"
        )?;
        for c in &self.checks {
            let mark = match c.present {
                Presence::Yes => "[x]",
                Presence::No => "[ ]",
                Presence::Unknown => "[?]",
            };
            write!(f, "  {mark} {}", c.ingredient)?;
            if !c.found.is_empty() {
                write!(f, ": {}", c.found)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  ({} configuration file(s) scanned)",
            self.setup.files.len()
        )?;
        for p in &self.setup.unreadable {
            writeln!(
                f,
                "  could not read {} (its directives are unknown)",
                p.display()
            )?;
        }
        writeln!(f)?;
        match self.verdict {
            Verdict::Recipe => {
                writeln!(
                    f,
                    "VERDICT: RECIPE MATCHED. Under HTTP/2 load, children will die with"
                )?;
                writeln!(
                    f,
                    "`AH00052: child pid N exit signal Segmentation fault (11)`; the parent"
                )?;
                writeln!(f, "respawns them, so only error_log shows it.")?;
            }
            Verdict::Mitigated => {
                writeln!(f, "VERDICT: recipe present, H2MaxWorkers stopgap in place.")?;
                if let Some(l) = self.setup.h2_max_workers.last() {
                    writeln!(f, "  {l}")?;
                }
            }
            Verdict::NoRecipe => {
                writeln!(
                    f,
                    "VERDICT: no recipe; this server does not match the known crash."
                )?;
                if self.setup.mpm.as_deref() == Some("prefork")
                    && self.setup.has_module("http2_module")
                {
                    writeln!(
                        f,
                        "note: under prefork mod_http2 does not serve h2 (HTTP/2 is off)."
                    )?;
                }
            }
        }
        // The options are for a server with the recipe, the stopgap in place or not.
        if self.verdict == Verdict::NoRecipe {
            return Ok(());
        }
        writeln!(f)?;
        write_options(f, self.setup.mpm.as_deref())
    }
}

/// What to do about the recipe: the stopgap (its cost on this MPM), the real fix, prefork.
fn write_options(f: &mut fmt::Formatter<'_>, mpm: Option<&str>) -> fmt::Result {
    let cost = if mpm == Some("worker") {
        "slow on the worker MPM (HTTP/2 requests queue for few threads)"
    } else {
        "tolerable on the event MPM"
    };
    writeln!(f, "Options:")?;
    writeln!(
        f,
        "  1. Stopgap: cap the HTTP/2 worker threads that run PHP, e.g."
    )?;
    writeln!(f, "       H2MinWorkers 1")?;
    writeln!(f, "       H2MaxWorkers 1")?;
    writeln!(f, "     in the server configuration; {cost}.")?;
    writeln!(
        f,
        "  2. Real fix: event MPM + proxy_fcgi + php-fpm (PHP out of the Apache process):"
    )?;
    writeln!(
        f,
        "       Debian: apt install php-fpm; a2dismod php*; a2enmod proxy_fcgi setenvif;"
    )?;
    writeln!(
        f,
        "               a2enconf php*-fpm; a2dismod mpm_worker; a2enmod mpm_event"
    )?;
    writeln!(
        f,
        "       RHEL:   dnf install php-fpm; comment out the php module in conf.modules.d;"
    )?;
    writeln!(f, "               <FilesMatch \\.php$> SetHandler \"proxy:unix:/run/php-fpm/www.sock|fcgi://localhost\" </FilesMatch>")?;
    writeln!(
        f,
        "  3. Or the prefork MPM: mod_php is safe there, but mod_http2 does not serve h2"
    )?;
    writeln!(f, "     under prefork, so HTTP/2 is off.")
}
