//! GeoLite2-Country-CSV → `GeoIP.dat` (type 1) and `GeoIPv6.dat` (type 12). A leaf is a
//! country's index in libGeoIP's table; blocks without `geoname_id` fall back to
//! `represented_country_geoname_id`, then `registered_country_geoname_id`; rows naming no
//! location at all but flagged `is_anonymous_proxy` / `is_satellite_provider` get libGeoIP's
//! A1 / A2.

use super::country_table::{continent_id, country_id, COUNTRY_CODES};
use super::csv::CsvReader;
use super::dat::DbType;
use super::edition::Edition;
use super::error::GeoipError;
use super::source::Source;
use std::collections::HashMap;
use std::io::BufRead;

/// The Country edition: a leaf is the country's index in libGeoIP's table.
pub(super) struct Country {
    /// `geoname_id` → country index.
    countries: HashMap<u32, u8>,
}

impl Edition for Country {
    const FILES: [(&'static str, DbType); 2] = [
        ("GeoIP.dat", DbType::Country),
        ("GeoIPv6.dat", DbType::CountryV6),
    ];

    /// The three geoname id columns in fallback order, and the A1 / A2 flag columns.
    type Columns = ([usize; 3], [Option<usize>; 2]);

    fn load(src: &mut Source) -> Result<Self, GeoipError> {
        Ok(Country {
            countries: load_locations(src)?,
        })
    }

    fn columns<R: BufRead>(csv: &CsvReader<R>) -> Result<Self::Columns, GeoipError> {
        Ok((id_columns(csv)?, flag_columns(csv)))
    }

    fn value<R: BufRead>(
        &mut self,
        &(cols, flags): &Self::Columns,
        row: &CsvReader<R>,
    ) -> Result<Option<u32>, GeoipError> {
        for col in cols {
            if let Some(c) = parse_id(row, col)?.and_then(|id| self.countries.get(&id)) {
                return Ok(Some(u32::from(*c)));
            }
        }
        Ok(flagged(row, flags).map(u32::from))
    }

    fn render(&self, v: u32) -> Option<String> {
        Some(COUNTRY_CODES[v as usize].to_string())
    }

    fn data(&self) -> &[u8] {
        &[]
    }
}

/// `geoname_id` → country index, from `Locations-en.csv`; continent-only locations map to
/// AP / EU.
fn load_locations(src: &mut Source) -> Result<HashMap<u32, u8>, GeoipError> {
    let edition = src.edition.clone();
    let mut csv = src.csv("Locations-en.csv")?;
    let (id_col, cont_col, iso_col) = (
        csv.column("geoname_id")?,
        csv.column("continent_code")?,
        csv.column("country_iso_code")?,
    );
    let mut map = HashMap::new();
    while csv.next_row()? {
        let id = parse_id(&csv, id_col)?.ok_or_else(|| csv.error("empty geoname_id"))?;
        let iso = csv.field(iso_col);
        let country = location_country(&csv, iso_col, cont_col);
        match country {
            Some(c) => {
                map.insert(id, c);
            }
            None => tracing::warn!(
                edition = %edition,
                geoname_id = id,
                country = iso,
                continent = csv.field(cont_col),
                "location has no entry in libGeoIP's country table; its networks are left out"
            ),
        }
    }
    Ok(map)
}

/// The country index of a `Locations-en.csv` row: its `country_iso_code`'s, or for a
/// continent-only location its continent's (AP / EU); `None` when libGeoIP's table has no
/// entry for it.
pub(super) fn location_country<R: BufRead>(
    csv: &CsvReader<R>,
    iso_col: usize,
    cont_col: usize,
) -> Option<u8> {
    let iso = csv.field(iso_col);
    if iso.is_empty() {
        continent_id(csv.field(cont_col))
    } else {
        country_id(iso)
    }
}

/// The columns `geoname_id`, `represented_country_geoname_id`, `registered_country_geoname_id`,
/// the order a block's location is looked up in.
pub(super) fn id_columns<R: BufRead>(csv: &CsvReader<R>) -> Result<[usize; 3], GeoipError> {
    Ok([
        csv.column("geoname_id")?,
        csv.column("represented_country_geoname_id")?,
        csv.column("registered_country_geoname_id")?,
    ])
}

/// The columns `is_anonymous_proxy` and `is_satellite_provider`, where present.
pub(super) fn flag_columns<R: BufRead>(csv: &CsvReader<R>) -> [Option<usize>; 2] {
    [
        csv.column("is_anonymous_proxy").ok(),
        csv.column("is_satellite_provider").ok(),
    ]
}

/// A1 (anonymous proxy) or A2 (satellite provider) for a row flagged so.
pub(super) fn flagged<R: BufRead>(row: &CsvReader<R>, flags: [Option<usize>; 2]) -> Option<u8> {
    let set = |c: Option<usize>| c.is_some_and(|c| row.field(c) == "1");
    if set(flags[0]) {
        country_id("A1")
    } else if set(flags[1]) {
        country_id("A2")
    } else {
        None
    }
}

/// A geoname id column: None when empty, an error when not a number.
pub(super) fn parse_id<R: BufRead>(
    csv: &CsvReader<R>,
    col: usize,
) -> Result<Option<u32>, GeoipError> {
    let f = csv.field(col);
    if f.is_empty() {
        return Ok(None);
    }
    f.parse()
        .map(Some)
        .map_err(|_| csv.error(&format!("not a geoname id: {f:?}")))
}
