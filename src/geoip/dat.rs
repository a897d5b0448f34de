//! The legacy file layout libGeoIP 1.6.12 reads: the tree as 6-byte nodes (two 3-byte
//! little-endian records), the record data (ASN strings, City records), then the trailer
//! `00 00 00`, a comment (`geoiplookup -v`), `FF FF FF`, the type byte and, for record-based
//! editions, the 3-byte segment (the number of nodes).

use super::error::GeoipError;
use super::tree::{Finished, NO_DATA};
use std::io::Write;

/// Where country ids start in Country files: a record `COUNTRY_BEGIN + id` is a country.
pub const COUNTRY_BEGIN: u32 = 16_776_960;
/// One past the largest value a 3-byte record holds.
pub const RECORD_LIMIT: u64 = 1 << 24;
/// libGeoIP reads at most this many bytes of comment.
pub const MAX_COMMENT: usize = 99;

/// The legacy database types this build writes (`GEOIP_*_EDITION` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbType {
    /// `GEOIP_COUNTRY_EDITION`.
    Country = 1,
    /// `GEOIP_CITY_EDITION_REV1`.
    CityRev1 = 2,
    /// `GEOIP_ASNUM_EDITION`.
    AsNum = 9,
    /// `GEOIP_COUNTRY_EDITION_V6`.
    CountryV6 = 12,
    /// `GEOIP_ASNUM_EDITION_V6`.
    AsNumV6 = 21,
    /// `GEOIP_CITY_EDITION_REV1_V6`.
    CityRev1V6 = 30,
}

impl DbType {
    /// The type from its byte, for the types this build writes.
    pub fn from_byte(b: u8) -> Option<DbType> {
        Some(match b {
            1 => DbType::Country,
            2 => DbType::CityRev1,
            9 => DbType::AsNum,
            12 => DbType::CountryV6,
            21 => DbType::AsNumV6,
            30 => DbType::CityRev1V6,
            _ => return None,
        })
    }

    /// True for the IPv6 types (128-bit trees).
    pub fn is_v6(self) -> bool {
        matches!(
            self,
            DbType::CountryV6 | DbType::AsNumV6 | DbType::CityRev1V6
        )
    }

    /// True for Country types, whose leaves are country ids rather than data offsets.
    pub fn is_country(self) -> bool {
        matches!(self, DbType::Country | DbType::CountryV6)
    }
}

/// Writes one legacy file: `tree` with its leaves pointing into `data` (whose byte 0 is never
/// pointed at, as libGeoIP reads a record equal to the segment as "not found"), then the
/// trailer. Returns the number of bytes written. Refuses what 3-byte records cannot address.
pub fn write_dat(
    out: &mut dyn Write,
    file: &'static str,
    db: DbType,
    tree: &Finished,
    data: &[u8],
    comment: &str,
) -> Result<u64, GeoipError> {
    let nodes = u64::from(tree.len());
    let base = if db.is_country() {
        if nodes > u64::from(COUNTRY_BEGIN) {
            return Err(GeoipError::TooLarge {
                file,
                message: format!("{nodes} tree nodes, the limit is {COUNTRY_BEGIN}"),
            });
        }
        COUNTRY_BEGIN
    } else {
        if nodes + data.len() as u64 > RECORD_LIMIT {
            return Err(GeoipError::TooLarge {
                file,
                message: format!(
                    "{nodes} tree nodes plus {} bytes of records exceed 2^24",
                    data.len()
                ),
            });
        }
        tree.len()
    };
    let io = |e| GeoipError::io(file, e);
    let mut buf = Vec::with_capacity(6 * 8192);
    let mut written = 0u64;
    for node in tree.file_order() {
        for rec in node {
            let v = match rec {
                Ok(index) => index,
                Err(NO_DATA) => base,
                Err(value) => base + value,
            };
            buf.extend_from_slice(&v.to_le_bytes()[..3]);
        }
        if buf.len() >= 6 * 8192 {
            out.write_all(&buf).map_err(io)?;
            written += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(io)?;
    written += buf.len() as u64;
    out.write_all(data).map_err(io)?;
    written += data.len() as u64;
    let trailer = trailer(db, tree.len(), comment);
    out.write_all(&trailer).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(written + trailer.len() as u64)
}

/// The trailer: `00 00 00`, the comment (at most 99 bytes, no NULs), `FF FF FF`, type,
/// and the segment for record-based types.
fn trailer(db: DbType, segment: u32, comment: &str) -> Vec<u8> {
    let mut t = vec![0, 0, 0];
    t.extend(
        comment
            .bytes()
            .filter(|b| *b != 0 && b.is_ascii())
            .take(MAX_COMMENT),
    );
    t.extend_from_slice(&[0xFF, 0xFF, 0xFF, db as u8]);
    if !db.is_country() {
        t.extend_from_slice(&segment.to_le_bytes()[..3]);
    }
    t
}

/// The comment naming the source: `geoiplookup -v` shows it.
pub fn comment(edition: &str, date: &str) -> String {
    let date = if date.is_empty() { "undated" } else { date };
    format!("{edition} {date} converted by opsd; GeoLite2 data by MaxMind, CC BY-SA 4.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_fits_libgeoip() {
        let c = comment("GeoLite2-Country-CSV", "20191224");
        assert!(c.len() <= MAX_COMMENT, "{} bytes", c.len());
        let t = trailer(DbType::AsNum, 0x010203, &c);
        assert_eq!(&t[..3], &[0, 0, 0]);
        assert_eq!(&t[t.len() - 7..], &[0xFF, 0xFF, 0xFF, 9, 3, 2, 1]);
    }
}
