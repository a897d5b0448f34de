//! GeoLite2-Country-CSV → `GeoIP.dat` (type 1) and `GeoIPv6.dat` (type 12). A leaf is a
//! country's index in libGeoIP's table; blocks without `geoname_id` fall back to
//! `represented_country_geoname_id`, then `registered_country_geoname_id`; rows naming no
//! location at all but flagged `is_anonymous_proxy` / `is_satellite_provider` get libGeoIP's
//! A1 / A2.

use super::build::{emit, link_v4, load_blocks, log_skips, samples, v4_samples_in_v6, BuiltFile};
use super::country_table::{continent_id, country_id, COUNTRY_CODES};
use super::csv::CsvReader;
use super::dat::DbType;
use super::error::GeoipError;
use super::source::Source;
use super::tree::Tree;
use std::collections::HashMap;
use std::io::{BufRead, Write};

/// Builds both Country files.
pub(super) fn build<W: Write>(
    src: &mut Source,
    create: &mut dyn FnMut(&'static str) -> std::io::Result<W>,
) -> Result<Vec<BuiltFile>, GeoipError> {
    let countries = load_locations(src)?;
    let render = |v: u32| Some(COUNTRY_CODES[v as usize].to_string());
    let mut tree = Tree::new();

    let v4_root = tree.new_root();
    let mut csv = src.csv("Blocks-IPv4.csv")?;
    let value = lookup(&csv, &countries)?;
    let v4 = load_blocks(&mut csv, true, &mut tree, v4_root, value)?;
    drop(csv);
    log_skips(src, "ipv4", &v4);
    let v4_samples = samples(&v4.picks, render);
    let finished = tree.finish(v4_root, 0);
    let mut out = vec![emit(
        create,
        src,
        "GeoIP.dat",
        DbType::Country,
        &finished,
        &[],
        v4.networks,
        v4_samples.clone(),
    )?];
    drop(finished);

    let v6_root = tree.new_root();
    let mut csv = src.csv("Blocks-IPv6.csv")?;
    let value = lookup(&csv, &countries)?;
    let v6 = load_blocks(&mut csv, false, &mut tree, v6_root, value)?;
    drop(csv);
    log_skips(src, "ipv6", &v6);
    link_v4(&mut tree, v6_root, v4_root);
    let mut v6_samples = samples(&v6.picks, render);
    v6_samples.extend(v4_samples_in_v6(&v4_samples));
    let finished = tree.finish(v6_root, v4_root);
    out.push(emit(
        create,
        src,
        "GeoIPv6.dat",
        DbType::CountryV6,
        &finished,
        &[],
        v6.networks + v4.networks,
        v6_samples,
    )?);
    Ok(out)
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
        let country = if iso.is_empty() {
            continent_id(csv.field(cont_col))
        } else {
            country_id(iso)
        };
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

/// The closure giving a block row's country index.
fn lookup<'m, R: BufRead>(
    csv: &CsvReader<R>,
    countries: &'m HashMap<u32, u8>,
) -> Result<impl FnMut(&CsvReader<R>) -> Result<Option<u32>, GeoipError> + 'm, GeoipError> {
    let cols = [
        csv.column("geoname_id")?,
        csv.column("represented_country_geoname_id")?,
        csv.column("registered_country_geoname_id")?,
    ];
    let flags = flag_columns(csv);
    Ok(move |row: &CsvReader<R>| {
        for col in cols {
            if let Some(c) = parse_id(row, col)?.and_then(|id| countries.get(&id)) {
                return Ok(Some(u32::from(*c)));
            }
        }
        Ok(flagged(row, flags).map(u32::from))
    })
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
