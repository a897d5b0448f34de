//! GeoLite2-ASN-CSV → `GeoIPASNum.dat` (type 9) and `GeoIPASNumv6.dat` (type 21). A leaf
//! points at a NUL-terminated Latin-1 string `"AS15169 Google LLC"` of at most 299 bytes
//! (libGeoIP reads 300); equal strings are stored once.

use super::build::{emit, link_v4, load_blocks, log_skips, samples, v4_samples_in_v6, BuiltFile};
use super::csv::CsvReader;
use super::dat::DbType;
use super::error::GeoipError;
use super::latin1::{from_latin1, push_latin1};
use super::source::Source;
use super::tree::Tree;
use std::collections::HashMap;
use std::io::{BufRead, Write};

/// The longest ASN string, without its NUL.
const MAX_NAME: usize = 299;

/// The record data: byte 0 unused (a record equal to the segment means "not found"), then
/// NUL-terminated strings, each stored once.
struct Names {
    data: Vec<u8>,
    index: HashMap<Box<[u8]>, u32>,
    scratch: Vec<u8>,
}

impl Names {
    fn new() -> Self {
        Names {
            data: vec![0],
            index: HashMap::new(),
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
        if let Some(&at) = self.index.get(self.scratch.as_slice()) {
            return at;
        }
        let at = self.data.len() as u32;
        self.data.extend_from_slice(&self.scratch);
        self.data.push(0);
        self.index
            .insert(self.scratch.clone().into_boxed_slice(), at);
        at
    }

    /// The string at `offset`, decoded.
    fn render(&self, offset: u32) -> Option<String> {
        let s = self.data.get(offset as usize..)?;
        let end = s.iter().position(|&c| c == 0)?;
        Some(from_latin1(&s[..end]))
    }
}

/// Builds both ASN files.
pub(super) fn build<W: Write>(
    src: &mut Source,
    create: &mut dyn FnMut(&'static str) -> std::io::Result<W>,
) -> Result<Vec<BuiltFile>, GeoipError> {
    let mut names = Names::new();
    let mut tree = Tree::new();

    let v4_root = tree.new_root();
    let mut csv = src.csv("Blocks-IPv4.csv")?;
    let value = lookup(&csv, &mut names)?;
    let v4 = load_blocks(&mut csv, true, &mut tree, v4_root, value)?;
    drop(csv);
    log_skips(src, "ipv4", &v4);
    let v4_samples = samples(&v4.picks, |v| names.render(v));
    let finished = tree.finish(v4_root, 0);
    let mut out = vec![emit(
        create,
        src,
        "GeoIPASNum.dat",
        DbType::AsNum,
        &finished,
        &names.data,
        v4.networks,
        v4_samples.clone(),
    )?];
    drop(finished);

    let v6_root = tree.new_root();
    let mut csv = src.csv("Blocks-IPv6.csv")?;
    let value = lookup(&csv, &mut names)?;
    let v6 = load_blocks(&mut csv, false, &mut tree, v6_root, value)?;
    drop(csv);
    log_skips(src, "ipv6", &v6);
    link_v4(&mut tree, v6_root, v4_root);
    let mut v6_samples = samples(&v6.picks, |v| names.render(v));
    v6_samples.extend(v4_samples_in_v6(&v4_samples));
    let finished = tree.finish(v6_root, v4_root);
    out.push(emit(
        create,
        src,
        "GeoIPASNumv6.dat",
        DbType::AsNumV6,
        &finished,
        &names.data,
        v6.networks + v4.networks,
        v6_samples,
    )?);
    Ok(out)
}

/// The closure giving a block row's string offset; rows without an AS number are skipped.
fn lookup<'n, R: BufRead>(
    csv: &CsvReader<R>,
    names: &'n mut Names,
) -> Result<impl FnMut(&CsvReader<R>) -> Result<Option<u32>, GeoipError> + 'n, GeoipError> {
    let asn_col = csv.column("autonomous_system_number")?;
    let org_col = csv.column("autonomous_system_organization")?;
    Ok(move |row: &CsvReader<R>| {
        let asn = row.field(asn_col);
        if asn.is_empty() {
            return Ok(None);
        }
        if !asn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(row.error(&format!("not an AS number: {asn:?}")));
        }
        Ok(Some(names.offset(asn, row.field(org_col))))
    })
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
