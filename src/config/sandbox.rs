//! Which paths the shipped systemd unit hides from the daemon. `ProtectHome=yes` makes
//! `/home`, `/root` and `/run/user` empty and inaccessible, `PrivateTmp=yes` gives the daemon a
//! `/tmp` and `/var/tmp` of its own: a file a job needs there exists for `sudo opsd check` and
//! not for the daemon. The settings are read from the unit file itself (built into the binary),
//! so that what `opsd check` warns about cannot drift from what the package installs.

use std::path::{Component, Path, PathBuf};

/// The unit the package installs, as built into this binary.
pub const SHIPPED_UNIT: &str = include_str!("../../systemd/opsd.service");
/// The unit's name, for messages.
pub const UNIT_NAME: &str = "opsd.service";

/// One setting of the unit that hides some directories from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hiding {
    /// The setting as the unit writes it, e.g. `ProtectHome=yes`.
    pub setting: String,
    /// The directories it hides.
    pub dirs: Vec<PathBuf>,
    /// What to do about a file there, in a few words.
    pub advice: &'static str,
}

/// The hiding settings of a unit, and what `ProtectSystem=strict` leaves writable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    /// Each setting that hides something, in the unit's order.
    pub hidings: Vec<Hiding>,
    /// Under `ProtectSystem=strict`, the directories the daemon may still write to
    /// (`ReadWritePaths=`, the state, runtime, cache and logs directories, /tmp and /var/tmp,
    /// /dev, /proc, /sys); `None` when the file system is not read-only.
    pub writable: Option<Vec<PathBuf>>,
}

/// What to do about a file under a directory `ProtectHome=` hides.
const HOME_ADVICE: &str = "move it out of /home, /root and /run/user (e.g. to /etc/opsd or \
     /var/lib/opsd), or lift the setting in a drop-in (`systemctl edit opsd`)";
/// What to do about a file under a directory `PrivateTmp=` replaces.
const TMP_ADVICE: &str = "the daemon has a /tmp and /var/tmp of its own, empty at each start; \
     keep the file elsewhere (e.g. /etc/opsd or /var/lib/opsd)";
/// What to do about a file under an `InaccessiblePaths=` directory.
const INACCESSIBLE_ADVICE: &str = "keep the file elsewhere, or change the setting in a drop-in \
     (`systemctl edit opsd`)";

impl Sandbox {
    /// The sandbox of the unit the package installs.
    pub fn shipped() -> Sandbox {
        Sandbox::from_unit(SHIPPED_UNIT)
    }

    /// Reads the hiding settings (`ProtectHome=`, `PrivateTmp=`, `InaccessiblePaths=`) of a
    /// unit's `[Service]` section; as systemd does, the last assignment of a boolean wins and an
    /// empty `InaccessiblePaths=` clears the list.
    pub fn from_unit(text: &str) -> Sandbox {
        let mut home: Option<String> = None;
        let mut tmp: Option<String> = None;
        let mut inaccessible: Vec<PathBuf> = Vec::new();
        let mut strict = false;
        let mut writable: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev", "/proc", "/sys"]
            .map(PathBuf::from)
            .into();
        let mut in_service = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            if !in_service || line.starts_with(['#', ';']) {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "ProtectHome" => home = Some(value.to_string()),
                "PrivateTmp" => tmp = Some(value.to_string()),
                "ProtectSystem" => strict = value == "strict",
                "ReadWritePaths" => writable.extend(
                    value
                        .split_whitespace()
                        .map(|p| PathBuf::from(p.trim_start_matches(['-', '+']))),
                ),
                dir @ ("StateDirectory" | "RuntimeDirectory" | "CacheDirectory"
                | "LogsDirectory") => {
                    let base = match dir {
                        "StateDirectory" => "/var/lib",
                        "RuntimeDirectory" => "/run",
                        "CacheDirectory" => "/var/cache",
                        _ => "/var/log",
                    };
                    writable.extend(value.split_whitespace().map(|d| Path::new(base).join(d)));
                }
                "InaccessiblePaths" if value.is_empty() => inaccessible.clear(),
                "InaccessiblePaths" => inaccessible.extend(
                    value
                        .split_whitespace()
                        .map(|p| PathBuf::from(p.trim_start_matches(['-', '+']))),
                ),
                _ => {}
            }
        }
        let mut hidings = Vec::new();
        if let Some(v) =
            home.filter(|v| matches!(v.as_str(), "yes" | "true" | "1" | "on" | "tmpfs"))
        {
            hidings.push(Hiding {
                setting: format!("ProtectHome={v}"),
                dirs: ["/home", "/root", "/run/user"].map(PathBuf::from).into(),
                advice: HOME_ADVICE,
            });
        }
        if let Some(v) = tmp.filter(|v| matches!(v.as_str(), "yes" | "true" | "1" | "on")) {
            hidings.push(Hiding {
                setting: format!("PrivateTmp={v}"),
                dirs: ["/tmp", "/var/tmp"].map(PathBuf::from).into(),
                advice: TMP_ADVICE,
            });
        }
        if !inaccessible.is_empty() {
            hidings.push(Hiding {
                setting: format!(
                    "InaccessiblePaths={}",
                    inaccessible
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                dirs: inaccessible,
                advice: INACCESSIBLE_ADVICE,
            });
        }
        Sandbox {
            hidings,
            writable: strict.then_some(writable),
        }
    }

    /// The reason the daemon cannot write under `dir` (`ProtectSystem=strict` without a
    /// `ReadWritePaths=` for it), if it cannot.
    pub fn read_only(&self, dir: &Path) -> Option<String> {
        let writable = self.writable.as_ref()?;
        let lexical = normalize(dir);
        let real = std::fs::canonicalize(dir).ok();
        let inside = |w: &PathBuf| {
            lexical.starts_with(w) || real.as_deref().is_some_and(|r| r.starts_with(w))
        };
        (!writable.iter().any(inside)).then(|| {
            format!(
                "ProtectSystem=strict in {UNIT_NAME} makes it read-only for the daemon (writable: {}); \
                 add ReadWritePaths={} in a drop-in (`systemctl edit opsd`)",
                writable
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                lexical.display()
            )
        })
    }

    /// The setting that hides `path` from the daemon, if any: judged on the path as written
    /// (`.` and `..` resolved) and, when it exists, on where its symlinks lead.
    pub fn hiding(&self, path: &Path) -> Option<&Hiding> {
        let lexical = normalize(path);
        let real = std::fs::canonicalize(path).ok();
        self.hidings.iter().find(|h| {
            h.dirs.iter().any(|d| {
                lexical.starts_with(d) || real.as_deref().is_some_and(|r| r.starts_with(d))
            })
        })
    }
}

/// `path` with `.` and `..` resolved without looking at the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_unit_hides_home_root_and_tmp() {
        let s = Sandbox::shipped();
        let home = s
            .hiding(Path::new("/root/.aws/credentials"))
            .expect("hidden");
        assert_eq!(home.setting, "ProtectHome=yes");
        assert!(s.hiding(Path::new("/home/alice/key")).is_some());
        assert!(s.hiding(Path::new("/run/user/1000/x")).is_some());
        let tmp = s.hiding(Path::new("/tmp/key")).expect("hidden");
        assert_eq!(tmp.setting, "PrivateTmp=yes");
        assert!(s.hiding(Path::new("/var/tmp/../tmp/x")).is_some());
        assert!(s.hiding(Path::new("/etc/opsd/key")).is_none());
        assert!(s.hiding(Path::new("/homestead/x")).is_none());
        assert!(s.hiding(Path::new("/etc/../home/x")).is_some());
    }

    #[test]
    fn under_protect_system_strict_only_the_listed_directories_are_writable() {
        let s = Sandbox::shipped();
        assert_eq!(s.read_only(Path::new("/usr/share/GeoIP")), None);
        assert_eq!(s.read_only(Path::new("/var/lib/opsd/geo")), None);
        let why = s.read_only(Path::new("/var/www/geoip")).expect("read-only");
        assert!(
            why.starts_with("ProtectSystem=strict in opsd.service makes it read-only")
                && why.ends_with(
                    "add ReadWritePaths=/var/www/geoip in a drop-in (`systemctl edit opsd`)"
                ),
            "{why}"
        );
        assert_eq!(
            Sandbox::from_unit("[Service]\nProtectSystem=full\n").read_only(Path::new("/var/www")),
            None
        );
    }

    #[test]
    fn settings_follow_systemds_last_assignment_and_section() {
        let unit = "[Unit]\nPrivateTmp=yes\n[Service]\nProtectHome=yes\nProtectHome=read-only\n\
                    InaccessiblePaths=-/srv/secret\n";
        let s = Sandbox::from_unit(unit);
        assert!(s.hiding(Path::new("/home/a")).is_none());
        assert!(s.hiding(Path::new("/tmp/a")).is_none());
        assert_eq!(
            s.hiding(Path::new("/srv/secret/k"))
                .map(|h| h.setting.as_str()),
            Some("InaccessiblePaths=/srv/secret")
        );
    }
}
