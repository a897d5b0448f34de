//! Reads legacy files the way libGeoIP 1.6.12 does (trailer scan, 3-byte records, record data
//! after the tree) so a freshly written file can be checked against its CSV before it is
//! installed, and answers are rendered as one comparable line.

use super::country_table::COUNTRY_CODES;
use super::dat::{DbType, COUNTRY_BEGIN};
use super::error::GeoipError;
use super::latin1::from_latin1;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

/// libGeoIP looks this many bytes back for the `FF FF FF` structure marker.
const STRUCTURE_INFO_MAX_SIZE: usize = 20;
/// libGeoIP reads at most this many bytes of an ASN record.
const MAX_ORG_RECORD_LENGTH: usize = 300;
/// libGeoIP's standard mode reads at most this many bytes of a City record.
pub const FULL_RECORD_LENGTH: usize = 50;

/// An address and the answer the CSV gives for it, rendered like [`DatFile::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The address to look up (IPv4 samples of v6 files are given as `::ffff:a.b.c.d`).
    pub addr: IpAddr,
    /// The expected answer, None for "not found".
    pub expect: Option<String>,
}

/// A legacy GeoIP file held in memory.
pub struct DatFile<'a> {
    bytes: &'a [u8],
    db: DbType,
    segment: u32,
}

impl<'a> DatFile<'a> {
    /// Parses the trailer of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<DatFile<'a>, GeoipError> {
        let bad = |m: &str| GeoipError::BadDatabase(m.to_string());
        let marker = (0..STRUCTURE_INFO_MAX_SIZE)
            .filter_map(|i| bytes.len().checked_sub(3 + i))
            .find(|&p| bytes[p..p + 3] == [0xFF; 3])
            .ok_or_else(|| bad("no FF FF FF structure marker near the end"))?;
        let type_byte = *bytes
            .get(marker + 3)
            .ok_or_else(|| bad("no type byte after the marker"))?;
        let db = DbType::from_byte(type_byte)
            .ok_or_else(|| GeoipError::BadDatabase(format!("unsupported type {type_byte}")))?;
        let segment = if db.is_country() {
            COUNTRY_BEGIN
        } else {
            let s = bytes
                .get(marker + 4..marker + 7)
                .ok_or_else(|| bad("no segment after the type byte"))?;
            u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16
        };
        Ok(DatFile { bytes, db, segment })
    }

    /// The database type.
    pub fn db_type(&self) -> DbType {
        self.db
    }

    /// The comment before the structure marker (what `geoiplookup -v` prints).
    pub fn comment(&self) -> Option<String> {
        let b = self.bytes;
        let marker = (0..STRUCTURE_INFO_MAX_SIZE)
            .filter_map(|i| b.len().checked_sub(3 + i))
            .find(|&p| b[p..p + 3] == [0xFF; 3])?;
        (0..100).find_map(|i| {
            let p = marker.checked_sub(3 + i)?;
            (b[p..p + 3] == [0, 0, 0]).then(|| from_latin1(&b[p + 3..marker]))
        })
    }

    /// The answer for `addr`, None when not found. IPv4 addresses in a v6 file are looked up
    /// as `::ffff:a.b.c.d`; IPv6 addresses in a v4 file are an error.
    pub fn lookup(&self, addr: IpAddr) -> Result<Option<String>, GeoipError> {
        let (bits, depth) = match (addr, self.db.is_v6()) {
            (IpAddr::V4(a), false) => ((u32::from(a) as u128) << 96, 32),
            (IpAddr::V4(a), true) => (u128::from(a.to_ipv6_mapped()), 128),
            (IpAddr::V6(a), true) => (u128::from(a), 128),
            (IpAddr::V6(_), false) => {
                return Err(GeoipError::BadDatabase(format!(
                    "{addr} is IPv6 but the file is IPv4-only"
                )))
            }
        };
        let x = self.seek(bits, depth)?;
        if self.db.is_country() {
            let id = x - COUNTRY_BEGIN;
            return Ok((id != 0).then(|| COUNTRY_CODES[id as usize & 0xFF].to_string()));
        }
        if x == self.segment {
            return Ok(None);
        }
        let at = x as usize + 5 * self.segment as usize;
        let rec = self
            .bytes
            .get(at..)
            .ok_or_else(|| GeoipError::BadDatabase(format!("record at {at} past the end")))?;
        match self.db {
            DbType::AsNum | DbType::AsNumV6 => {
                let rec = &rec[..rec.len().min(MAX_ORG_RECORD_LENGTH)];
                let end = rec.iter().position(|&c| c == 0).ok_or_else(|| {
                    GeoipError::BadDatabase(format!("ASN record at {at} not terminated"))
                })?;
                Ok(Some(from_latin1(&rec[..end])))
            }
            _ => render_city(&rec[..rec.len().min(FULL_RECORD_LENGTH)])
                .map(Some)
                .ok_or_else(|| GeoipError::BadDatabase(format!("City record at {at} is cut"))),
        }
    }

    /// Walks the tree like `_GeoIP_seek_record`; the leaf record value.
    fn seek(&self, bits: u128, depth: u32) -> Result<u32, GeoipError> {
        let mut offset = 0usize;
        for d in 0..depth {
            let bit = (bits >> (127 - d)) as usize & 1;
            let at = offset * 6 + bit * 3;
            let r = self.bytes.get(at..at + 3).ok_or_else(|| {
                GeoipError::BadDatabase(format!("tree node {offset} past the end of the file"))
            })?;
            let x = u32::from(r[0]) | u32::from(r[1]) << 8 | u32::from(r[2]) << 16;
            if x >= self.segment {
                return Ok(x);
            }
            offset = x as usize;
        }
        Err(GeoipError::BadDatabase(format!(
            "no leaf within {depth} bits"
        )))
    }
}

/// Renders a City record as `CC|region|city|postal|lat|lon|metro` (lat/lon to 4 places,
/// metro only for US). None when the 50 bytes end inside the record.
pub fn render_city(rec: &[u8]) -> Option<String> {
    let country = COUNTRY_CODES[usize::from(*rec.first()?)];
    let mut rest = &rec[1..];
    let mut strings = Vec::with_capacity(3);
    for _ in 0..3 {
        let end = rest.iter().position(|&c| c == 0)?;
        strings.push(from_latin1(&rest[..end]));
        rest = &rest[end + 1..];
    }
    let num = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    let lat = f64::from(num(rest.get(0..3)?)) / 10000.0 - 180.0;
    let lon = f64::from(num(rest.get(3..6)?)) / 10000.0 - 180.0;
    let metro = if country == "US" {
        num(rest.get(6..9)?) / 1000
    } else {
        0
    };
    Some(format!(
        "{country}|{}|{}|{}|{lat:.4}|{lon:.4}|{metro}",
        strings[0], strings[1], strings[2]
    ))
}

/// Checks every sample against `dat`: the installer's last look before a rename.
pub fn verify_samples(dat: &[u8], samples: &[Sample]) -> Result<(), GeoipError> {
    let file = DatFile::new(dat)?;
    for s in samples {
        let found = file.lookup(s.addr)?;
        if found != s.expect {
            return Err(GeoipError::SampleMismatch {
                addr: s.addr,
                expected: s.expect.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// Reads the file at `path` and checks every sample against it ([`verify_samples`]).
pub fn verify_file(path: &Path, samples: &[Sample]) -> Result<(), GeoipError> {
    let dat = std::fs::read(path).map_err(|e| GeoipError::io(path, e))?;
    verify_samples(&dat, samples)
}

/// The three ways an IPv4 address is asked in a v6 file (`::a.b.c.d`, `::ffff:a.b.c.d`,
/// `2002:aabb:ccdd::`), for samples and tests.
pub fn v4_in_v6(a: std::net::Ipv4Addr) -> [Ipv6Addr; 3] {
    let v = u32::from(a) as u128;
    [
        Ipv6Addr::from(v),
        Ipv6Addr::from(0xffff_u128 << 32 | v),
        Ipv6Addr::from(0x2002_u128 << 112 | v << 80),
    ]
}
