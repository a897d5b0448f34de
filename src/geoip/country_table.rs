//! libGeoIP 1.6.12's fixed country table: a legacy file stores a country as its index in
//! `GeoIP_country_code[]`. Dumped from Debian's libgeoip1 1.6.12-10 and checked entry by entry.

/// `GeoIP_country_code[]` in libGeoIP 1.6.12 order; index 0 (`--`) means "not found".
pub const COUNTRY_CODES: [&str; 256] = [
    "--", "AP", "EU", "AD", "AE", "AF", "AG", "AI", "AL", "AM", "CW", "AO", "AQ", "AR", "AS", "AT",
    "AU", "AW", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BM", "BN", "BO", "BR",
    "BS", "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM",
    "CN", "CO", "CR", "CU", "CV", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "SX", "GA", "GB", "GD", "GE",
    "GF", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IN", "IO", "IQ", "IR", "IS", "IT", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK",
    "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "MG", "MH", "MK", "ML", "MM", "MN", "MO",
    "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG",
    "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM",
    "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RU", "RW", "SA", "SB", "SC", "SD", "SE",
    "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "ST", "SV", "SY", "SZ", "TC", "TD",
    "TF", "TG", "TH", "TJ", "TK", "TM", "TN", "TO", "TL", "TR", "TT", "TV", "TW", "TZ", "UA", "UG",
    "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "RS",
    "ZA", "ZM", "ME", "ZW", "A1", "A2", "O1", "AX", "GG", "IM", "JE", "BL", "MF", "BQ", "SS", "O1",
];

/// The table index of an ISO 3166-1 alpha-2 code (first match), with GeoLite2's `XK` (Kosovo)
/// filed under `RS` as libGeoIP has no entry for it.
pub fn country_id(code: &str) -> Option<u8> {
    let code = if code == "XK" { "RS" } else { code };
    COUNTRY_CODES
        .iter()
        .skip(1)
        .position(|c| *c == code)
        .map(|i| (i + 1) as u8)
}

/// The pseudo-country libGeoIP uses for a location that names only a continent.
pub fn continent_id(continent: &str) -> Option<u8> {
    match continent {
        "EU" => country_id("EU"),
        "AS" | "OC" => country_id("AP"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_libgeoip_indices() {
        assert_eq!(country_id("US"), Some(225));
        assert_eq!(country_id("RS"), Some(239));
        assert_eq!(country_id("XK"), Some(239));
        assert_eq!(country_id("O1"), Some(246));
        assert_eq!(country_id("SS"), Some(254));
        assert_eq!(country_id("--"), None);
        assert_eq!(country_id("ZZ"), None);
        assert_eq!(continent_id("EU"), Some(2));
        assert_eq!(continent_id("AS"), Some(1));
        assert_eq!(continent_id("AF"), None);
    }
}
