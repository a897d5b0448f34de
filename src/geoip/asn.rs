//! GeoLite2-ASN-CSV → `GeoIPASNum.dat` (type 9) and `GeoIPASNumv6.dat` (type 21). A leaf
//! points at a NUL-terminated Latin-1 string `"AS15169 Google LLC"` of at most 299 bytes
//! (libGeoIP reads 300); equal strings are stored once.

use super::csv::CsvReader;
use super::dat::DbType;
use super::edition::Edition;
use super::error::GeoipError;
use super::latin1::{from_latin1, push_latin1};
use super::record_data::RecordData;
use super::source::Source;
use std::io::BufRead;

/// The longest ASN string, without its NUL.
const MAX_NAME: usize = 299;

/// The NUL-terminated `"AS{number} {organisation}"` strings, each stored once.
struct Names {
    store: RecordData,
    scratch: Vec<u8>,
}

impl Names {
    fn new() -> Self {
        Names {
            store: RecordData::new(),
            scratch: Vec::with_capacity(MAX_NAME + 32),
        }
    }

    /// The offset of `"AS{asn} {org}"`, stored if new.
    fn offset(&mut self, asn: &str, org: &str) -> u32 {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"AS");
        self.scratch.extend_from_slice(asn.as_bytes());
        if !org.is_empty() {
            self.scratch.push(b' ');
            push_latin1(&mut self.scratch, org);
        }
        self.scratch.truncate(MAX_NAME);
        self.scratch.push(0);
        self.store.offset(&self.scratch)
    }

    /// The string at `offset`, decoded.
    fn render(&self, offset: u32) -> Option<String> {
        let s = self.store.at(offset)?;
        let end = s.iter().position(|&c| c == 0)?;
        Some(from_latin1(&s[..end]))
    }
}

/// The ASN edition: a leaf points at its `"AS{number} {organisation}"` string.
pub(super) struct Asn {
    names: Names,
}

impl Edition for Asn {
    const FILES: [(&'static str, DbType); 2] = [
        ("GeoIPASNum.dat", DbType::AsNum),
        ("GeoIPASNumv6.dat", DbType::AsNumV6),
    ];

    /// `autonomous_system_number`, `autonomous_system_organization`.
    type Columns = (usize, usize);

    fn load(_src: &mut Source) -> Result<Self, GeoipError> {
        Ok(Asn {
            names: Names::new(),
        })
    }

    fn columns<R: BufRead>(csv: &CsvReader<R>) -> Result<Self::Columns, GeoipError> {
        Ok((
            csv.column("autonomous_system_number")?,
            csv.column("autonomous_system_organization")?,
        ))
    }

    /// Rows without an AS number are skipped.
    fn value<R: BufRead>(
        &mut self,
        &(asn_col, org_col): &Self::Columns,
        row: &CsvReader<R>,
    ) -> Result<Option<u32>, GeoipError> {
        let asn = row.field(asn_col);
        if asn.is_empty() {
            return Ok(None);
        }
        if !asn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(row.error(&format!("not an AS number: {asn:?}")));
        }
        Ok(Some(self.names.offset(asn, row.field(org_col))))
    }

    fn render(&self, v: u32) -> Option<String> {
        self.names.render(v)
    }

    fn data(&self) -> &[u8] {
        self.names.store.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_latin1_deduplicated_and_capped() {
        let mut n = Names::new();
        let a = n.offset("15169", "Google LLC");
        assert_eq!(a, 1);
        assert_eq!(n.offset("15169", "Google LLC"), a);
        let b = n.offset("7641", "Ōbu Société");
        assert_eq!(n.render(b).as_deref(), Some("AS7641 Obu Société"));
        let long = "x".repeat(400);
        let c = n.offset("1", &long);
        assert_eq!(n.render(c).map(|s| s.len()), Some(MAX_NAME));
        let d = n.offset("64512", "");
        assert_eq!(n.render(d).as_deref(), Some("AS64512"));
    }
}
