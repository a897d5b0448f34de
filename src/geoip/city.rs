//! GeoLite2-City-CSV → `GeoIPCity.dat` (City Rev1, type 2) and `GeoIPCityv6.dat` (type 30).
//! A record is: country index, region, city, postal code (NUL-terminated Latin-1), latitude
//! and longitude as `(deg + 180) * 10000` in 3 bytes each, and for US the 3-byte
//! `metro * 1000 + area`. libGeoIP reads 50 bytes, so the city name is shortened to fit.
//! Regions: libGeoIP's codes are ISO 3166-2 for US and CA only (FIPS 10-4 elsewhere, which
//! GeoLite2 lacks), so other countries' regions are left empty rather than wrong.

use super::country::{flag_columns, flagged, id_columns, location_country, parse_id};
use super::csv::CsvReader;
use super::dat::DbType;
use super::edition::Edition;
use super::error::GeoipError;
use super::latin1::push_latin1;
use super::reader::{render_city, FULL_RECORD_LENGTH};
use super::record_data::RecordData;
use super::source::Source;
use std::collections::HashMap;
use std::io::BufRead;

/// The US country index (the only country with metro codes).
const US: u8 = 225;
/// The CA country index.
const CA: u8 = 38;
/// The longest postal code kept.
const MAX_POSTAL: usize = 15;

/// One row of `Locations-en.csv`, already in record form.
struct Location {
    country: u8,
    region: Box<[u8]>,
    city: Box<[u8]>,
    metro: u32,
}

/// The City edition: a leaf points at a City Rev1 record.
pub(super) struct City {
    /// `geoname_id` → location.
    locations: HashMap<u32, Location>,
    records: Records,
    /// The location of a block that names none but is flagged A1 / A2 (its country set).
    pseudo: Location,
}

/// The columns of a City Blocks CSV a record is made from.
pub(super) struct CityColumns {
    /// The geoname id columns in fallback order.
    ids: [usize; 3],
    /// `postal_code`.
    postal: usize,
    /// `latitude`.
    lat: usize,
    /// `longitude`.
    lon: usize,
    /// The A1 / A2 flag columns.
    flags: [Option<usize>; 2],
}

impl Edition for City {
    const FILES: [(&'static str, DbType); 2] = [
        ("GeoIPCity.dat", DbType::CityRev1),
        ("GeoIPCityv6.dat", DbType::CityRev1V6),
    ];

    type Columns = CityColumns;

    fn load(src: &mut Source) -> Result<Self, GeoipError> {
        Ok(City {
            locations: load_locations(src)?,
            records: Records::new(),
            pseudo: Location {
                country: 0,
                region: Box::new([]),
                city: Box::new([]),
                metro: 0,
            },
        })
    }

    fn columns<R: BufRead>(csv: &CsvReader<R>) -> Result<Self::Columns, GeoipError> {
        Ok(CityColumns {
            ids: id_columns(csv)?,
            postal: csv.column("postal_code")?,
            lat: csv.column("latitude")?,
            lon: csv.column("longitude")?,
            flags: flag_columns(csv),
        })
    }

    fn value<R: BufRead>(
        &mut self,
        cols: &Self::Columns,
        row: &CsvReader<R>,
    ) -> Result<Option<u32>, GeoipError> {
        let mut loc = None;
        for col in cols.ids {
            if let Some(l) = parse_id(row, col)?.and_then(|id| self.locations.get(&id)) {
                loc = Some(l);
                break;
            }
        }
        let loc = match (loc, flagged(row, cols.flags)) {
            (Some(l), _) => l,
            (None, Some(country)) => {
                self.pseudo.country = country;
                &self.pseudo
            }
            (None, None) => return Ok(None),
        };
        let lat = parse_degrees(row, cols.lat)?;
        let lon = parse_degrees(row, cols.lon)?;
        Ok(Some(self.records.offset(
            loc,
            row.field(cols.postal),
            lat,
            lon,
        )))
    }

    fn render(&self, v: u32) -> Option<String> {
        self.records.render(v)
    }

    fn data(&self) -> &[u8] {
        self.records.store.bytes()
    }
}

/// `geoname_id` → location, from `Locations-en.csv`.
fn load_locations(src: &mut Source) -> Result<HashMap<u32, Location>, GeoipError> {
    let edition = src.edition.clone();
    let mut csv = src.csv("Locations-en.csv")?;
    let cols = [
        "geoname_id",
        "continent_code",
        "country_iso_code",
        "subdivision_1_iso_code",
        "city_name",
        "metro_code",
    ]
    .map(|c| csv.column(c));
    let [id_col, cont_col, iso_col, sub_col, city_col, metro_col] = {
        let mut out = [0; 6];
        for (o, c) in out.iter_mut().zip(cols) {
            *o = c?;
        }
        out
    };
    let mut map = HashMap::new();
    while csv.next_row()? {
        let id = parse_id(&csv, id_col)?.ok_or_else(|| csv.error("empty geoname_id"))?;
        let iso = csv.field(iso_col);
        let country = location_country(&csv, iso_col, cont_col);
        let Some(country) = country else {
            tracing::warn!(
                edition = %edition,
                geoname_id = id,
                country = iso,
                "location has no entry in libGeoIP's country table; its networks are left out"
            );
            continue;
        };
        let region: Box<[u8]> = if country == US || country == CA {
            csv.field(sub_col)
                .bytes()
                .filter(u8::is_ascii_alphanumeric)
                .take(3)
                .collect()
        } else {
            Box::new([])
        };
        let mut city = Vec::new();
        push_latin1(&mut city, csv.field(city_col));
        let metro = if country == US {
            csv.field(metro_col).parse().unwrap_or(0)
        } else {
            0
        };
        map.insert(
            id,
            Location {
                country,
                region,
                city: city.into_boxed_slice(),
                metro,
            },
        );
    }
    Ok(map)
}

/// The City Rev1 records, each distinct one stored once.
struct Records {
    store: RecordData,
    scratch: Vec<u8>,
    postal: Vec<u8>,
}

impl Records {
    fn new() -> Self {
        Records {
            store: RecordData::new(),
            scratch: Vec::with_capacity(64),
            postal: Vec::with_capacity(32),
        }
    }

    /// The offset of the record for `loc` with the block's postal code and coordinates.
    fn offset(&mut self, loc: &Location, postal: &str, lat: f64, lon: f64) -> u32 {
        self.postal.clear();
        push_latin1(&mut self.postal, postal);
        self.postal.truncate(MAX_POSTAL);
        let fixed = 1 + 3 + 6 + if loc.country == US { 3 } else { 0 };
        let room = FULL_RECORD_LENGTH - fixed - loc.region.len() - self.postal.len();
        let city = &loc.city[..loc.city.len().min(room)];
        let r = &mut self.scratch;
        r.clear();
        r.push(loc.country);
        for s in [&loc.region[..], city, &self.postal] {
            r.extend_from_slice(s);
            r.push(0);
        }
        r.extend_from_slice(&coordinate(lat).to_le_bytes()[..3]);
        r.extend_from_slice(&coordinate(lon).to_le_bytes()[..3]);
        if loc.country == US {
            // GeoLite2 has no area codes: metro * 1000 + 0.
            r.extend_from_slice(&(loc.metro.min(16_776) * 1000).to_le_bytes()[..3]);
        }
        self.store.offset(r)
    }

    /// The record at `offset`, rendered as the reader does.
    fn render(&self, offset: u32) -> Option<String> {
        let rec = self.store.at(offset)?;
        render_city(&rec[..rec.len().min(FULL_RECORD_LENGTH)])
    }
}

/// A latitude or longitude in libGeoIP's encoding.
fn coordinate(deg: f64) -> u32 {
    ((deg.clamp(-180.0, 180.0) + 180.0) * 10000.0).round() as u32
}

/// A latitude or longitude column; 0 when empty.
fn parse_degrees<R: BufRead>(row: &CsvReader<R>, col: usize) -> Result<f64, GeoipError> {
    let f = row.field(col);
    if f.is_empty() {
        return Ok(0.0);
    }
    f.parse()
        .map_err(|_| row.error(&format!("not a coordinate: {f:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fit_in_50_bytes_and_carry_the_metro_code() {
        let mut r = Records::new();
        let loc = Location {
            country: US,
            region: Box::new(*b"CA"),
            city: b"Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
                .to_vec()
                .into(),
            metro: 807,
        };
        let at = r.offset(&loc, "94043", 37.4192, -122.0574);
        let rec = r.store.at(at).unwrap();
        assert!(rec.len() <= FULL_RECORD_LENGTH, "{} bytes", rec.len());
        let shown = r.render(at).unwrap();
        assert!(shown.starts_with("US|CA|Llanfair"), "{shown}");
        assert!(shown.ends_with("|94043|37.4192|-122.0574|807"), "{shown}");
        assert_eq!(r.offset(&loc, "94043", 37.4192, -122.0574), at);
        assert_ne!(r.offset(&loc, "94044", 37.4192, -122.0574), at);
    }

    #[test]
    fn coordinates_use_libgeoip_encoding() {
        assert_eq!(coordinate(0.0), 1_800_000);
        assert_eq!(coordinate(-180.0), 0);
        assert_eq!(coordinate(51.5142), 2_315_142);
    }
}
