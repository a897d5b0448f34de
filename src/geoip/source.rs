//! A GeoLite2 CSV zip as MaxMind ships it (`GeoLite2-Country-CSV_20191224/…-Blocks-IPv4.csv`):
//! which edition and date it holds, and its CSV members streamed straight out of the archive
//! under the caps of a [`BuildGuard`]: declared sizes are checked when it is opened, unpacked
//! bytes while they stream.

use super::archive::check_directory;
use super::csv::CsvReader;
use super::error::GeoipError;
use super::guard::{BuildGuard, Limited};
use std::cell::Cell;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A member of the zip as the CSV reader reads it: unpacked, counted against the caps.
type Member<'a> = BufReader<Limited<'a, zip::read::ZipFile<'a, BufReader<File>>>>;

/// The kinds of GeoLite2 CSV editions this build turns into legacy files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditionKind {
    /// `GeoLite2-Country-CSV` → `GeoIP.dat`, `GeoIPv6.dat`.
    Country,
    /// `GeoLite2-ASN-CSV` → `GeoIPASNum.dat`, `GeoIPASNumv6.dat`.
    Asn,
    /// `GeoLite2-City-CSV` → `GeoIPCity.dat`, `GeoIPCityv6.dat`.
    City,
}

/// Every edition's MaxMind name, the one place each is written.
pub const EDITIONS: [&str; 3] = [
    EditionKind::Country.name(),
    EditionKind::Asn.name(),
    EditionKind::City.name(),
];

impl EditionKind {
    /// Every kind, in the order of [`EDITIONS`].
    pub const ALL: [EditionKind; 3] = [EditionKind::Country, EditionKind::Asn, EditionKind::City];

    /// The edition's MaxMind name, e.g. `GeoLite2-Country-CSV`.
    pub const fn name(self) -> &'static str {
        match self {
            EditionKind::Country => "GeoLite2-Country-CSV",
            EditionKind::Asn => "GeoLite2-ASN-CSV",
            EditionKind::City => "GeoLite2-City-CSV",
        }
    }

    /// The word in MaxMind's member names (`GeoLite2-{word}-Blocks-IPv4.csv`): the name
    /// between `GeoLite2-` and `-CSV`.
    fn word(self) -> &'static str {
        let name = self.name();
        name.strip_prefix("GeoLite2-")
            .and_then(|n| n.strip_suffix("-CSV"))
            .unwrap_or(name)
    }
}

/// An opened GeoLite2 CSV zip.
pub struct Source {
    path: PathBuf,
    archive: zip::ZipArchive<BufReader<File>>,
    names: Vec<String>,
    guard: BuildGuard,
    /// Bytes unpacked from every member read so far.
    unpacked: Cell<u64>,
    /// Which kind of edition it is.
    pub kind: EditionKind,
    /// The edition's name, e.g. `GeoLite2-Country-CSV`.
    pub edition: String,
    /// The release date as `YYYYMMDD` (from the folder in the zip, else from the zip's name),
    /// or empty when neither carries one.
    pub date: String,
}

impl Source {
    /// Opens `path`, checks its directory against `guard`'s caps and works out the edition
    /// from the member names.
    pub fn open(path: &Path, guard: &BuildGuard) -> Result<Source, GeoipError> {
        let file = File::open(path).map_err(|e| GeoipError::io(path, e))?;
        let mut archive =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|e| GeoipError::Zip {
                path: path.to_path_buf(),
                message: format!("not a readable zip archive: {e}"),
            })?;
        check_directory(path, &mut archive, &guard.limits)?;
        let names: Vec<String> = archive
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect();
        let (kind, blocks) = EditionKind::ALL
            .into_iter()
            .find_map(|k| {
                let suffix = format!("-{}-Blocks-IPv4.csv", k.word());
                names.iter().find(|n| n.ends_with(&suffix)).map(|n| (k, n))
            })
            .ok_or_else(|| GeoipError::UnknownEdition {
                path: path.to_path_buf(),
                found: names.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            })?;
        // `GeoLite2-Country-CSV_20191224/GeoLite2-Country-Blocks-IPv4.csv`
        let base = blocks.rsplit('/').next().unwrap_or(blocks);
        let product = base
            .strip_suffix(&format!("-{}-Blocks-IPv4.csv", kind.word()))
            .unwrap_or("GeoLite2");
        let edition = format!("{product}-{}-CSV", kind.word());
        let folder = blocks.rsplit_once('/').map(|(f, _)| f).unwrap_or("");
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let date = date_in(folder)
            .or_else(|| date_in(&file_name))
            .unwrap_or_default();
        Ok(Source {
            path: path.to_path_buf(),
            archive,
            names,
            guard: guard.clone(),
            unpacked: Cell::new(0),
            kind,
            edition,
            date,
        })
    }

    /// Streams the member whose name ends with `-{suffix}` (e.g. `Blocks-IPv6.csv`).
    pub fn csv(&mut self, suffix: &str) -> Result<CsvReader<Member<'_>>, GeoipError> {
        let wanted = format!("-{}-{suffix}", self.kind.word());
        let name = self
            .names
            .iter()
            .find(|n| n.ends_with(&wanted))
            .cloned()
            .ok_or_else(|| GeoipError::Zip {
                path: self.path.clone(),
                message: format!("no member ending in {wanted:?}"),
            })?;
        let member = self.archive.by_name(&name).map_err(|e| GeoipError::Zip {
            path: self.path.clone(),
            message: format!("{name}: {e}"),
        })?;
        let short = name.rsplit('/').next().unwrap_or(&name).to_string();
        let member = Limited::new(member, &self.path, &name, &self.unpacked, &self.guard);
        CsvReader::new(BufReader::with_capacity(1 << 16, member), &short)
    }
}

/// The first run of exactly eight digits after an `_` (`…-CSV_20191224`).
fn date_in(s: &str) -> Option<String> {
    s.split('_').skip(1).find_map(|part| {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        (digits.len() == 8).then_some(digits)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_member_word() {
        let words: Vec<_> = EditionKind::ALL.iter().map(|k| k.word()).collect();
        assert_eq!(words, ["Country", "ASN", "City"]);
    }

    #[test]
    fn finds_dates_in_names() {
        assert_eq!(
            date_in("GeoLite2-Country-CSV_20191224").as_deref(),
            Some("20191224")
        );
        assert_eq!(
            date_in("GeoLite2-ASN-CSV_20191224.zip").as_deref(),
            Some("20191224")
        );
        assert_eq!(date_in("download.zip"), None);
        assert_eq!(date_in("x_2019122"), None);
    }
}
