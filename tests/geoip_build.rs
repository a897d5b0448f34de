//! Builds legacy GeoIP files from the committed GeoLite2 zips (and a generated City zip) with
//! the real `opsd` binary and asks the real libGeoIP (`geoiplookup`, `geoiplookup6` from
//! Debian's geoip-bin) about more than 10,000 addresses drawn from the CSVs.

use opsd::geoip::latin1::push_latin1;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const COUNTRY_ZIP: &str = "GeoLite2-Country-CSV_20191224.zip";
const ASN_ZIP: &str = "GeoLite2-ASN-CSV_20191224.zip";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/geoip")
        .join(name)
}

/// The path of a geoip-bin tool; panics loudly when it is missing.
fn tool(name: &str) -> PathBuf {
    let p = Path::new("/usr/bin").join(name);
    assert!(
        p.is_file(),
        "{} not found: install Debian's geoip-bin (libGeoIP is this test's oracle)",
        p.display()
    );
    p
}

/// Runs `opsd geoip build` on `zips` into a new directory.
fn build(zips: &[PathBuf]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(crate::util::OPSD);
    cmd.args(["geoip", "build", "--output-dir"]).arg(dir.path());
    for z in zips {
        cmd.arg("--input").arg(z);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "opsd geoip build failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, stdout)
}

/// The rows of the zip member ending in `suffix`, as header-keyed maps.
fn csv_rows(zip: &Path, suffix: &str) -> Vec<HashMap<String, String>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let name = archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .find(|n| n.ends_with(suffix))
        .unwrap_or_else(|| panic!("{}: no {suffix}", zip.display()));
    let mut text = String::new();
    archive
        .by_name(&name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mut records = parse_csv(&text).into_iter();
    let header = records.next().unwrap();
    records
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// A plain RFC 4180 parser, independent of the one under test.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A CSV network: first address bits (left-aligned), prefix, IPv4 or not.
fn network(s: &str) -> (u128, u32, bool) {
    let (a, p) = s.split_once('/').unwrap();
    let p: u32 = p.parse().unwrap();
    match a.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v) => ((u32::from(v) as u128) << 96, p, true),
        IpAddr::V6(v) => (u128::from(v), p, false),
    }
}

/// First, last and one random address of a CSV network.
fn addresses(net: &str, rng: &mut fastrand::Rng) -> Vec<IpAddr> {
    let (bits, prefix, v4) = network(net);
    let width = if v4 { 32 } else { 128 };
    let host = if prefix == width {
        0
    } else {
        (u128::MAX >> (128 - (width - prefix))) << (128 - width)
    };
    [bits, bits | host, bits | (rng.u128(..) & host)]
        .into_iter()
        .map(|b| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from((b >> 96) as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(b))
            }
        })
        .collect()
}

/// An IPv4 address in one of the three forms a v6 file answers for it.
fn via_v6(a: Ipv4Addr, form: usize) -> String {
    let v = u32::from(a) as u128;
    match form % 3 {
        0 => format!("::ffff:{a}"),
        1 => Ipv6Addr::from(v).to_string(),
        _ => Ipv6Addr::from(0x2002_u128 << 112 | v << 80).to_string(),
    }
}

/// Every `stride`-th row (from a seeded offset), at most `max`.
fn pick<T: Clone>(rows: &[T], max: usize, rng: &mut fastrand::Rng) -> Vec<T> {
    let stride = (rows.len() / max).max(1);
    let start = rng.usize(..stride);
    rows.iter()
        .skip(start)
        .step_by(stride)
        .take(max)
        .cloned()
        .collect()
}

/// `s` in ISO-8859-1 as libGeoIP stores names, transliterated as opsd writes them.
fn to_latin1(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    push_latin1(&mut v, s);
    v
}

/// Names as `tool` prints them: geoiplookup converts libGeoIP's Latin-1 to UTF-8,
/// geoiplookup6 prints the bytes as stored.
fn as_printed_by(tool: &str, latin1: &[u8]) -> Vec<u8> {
    if tool == "geoiplookup" {
        latin1
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .into_bytes()
    } else {
        latin1.to_vec()
    }
}

/// One lookup to make: tool, file, address, expected answer bytes after the edition label.
struct Ask {
    tool: &'static str,
    file: PathBuf,
    addr: String,
    expect: Vec<u8>,
}

/// Runs every lookup on a few threads; returns how many ran and the mismatches.
fn run_all(asks: Vec<Ask>) -> (usize, Vec<String>) {
    let total = asks.len();
    let queue = Mutex::new(asks);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let Some(ask) = queue.lock().unwrap().pop() else {
                    return;
                };
                let out = Command::new(tool(ask.tool))
                    .arg("-f")
                    .arg(&ask.file)
                    .arg(&ask.addr)
                    .output()
                    .unwrap();
                let line = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
                let answer = line
                    .windows(2)
                    .position(|w| w == b": ")
                    .map(|i| &line[i + 2..])
                    .unwrap_or(line);
                // An expectation ending in ", " (a country code) need only start the answer.
                let ok = if ask.expect.ends_with(b", ") {
                    answer.starts_with(&ask.expect)
                } else {
                    answer == ask.expect.as_slice()
                };
                if !ok {
                    failures.lock().unwrap().push(format!(
                        "{} -f {} {}: got {:?}, CSV says {:?}",
                        ask.tool,
                        ask.file.display(),
                        ask.addr,
                        String::from_utf8_lossy(line),
                        String::from_utf8_lossy(&ask.expect)
                    ));
                }
            });
        }
    });
    let f = failures.into_inner().unwrap();
    (total, f)
}

/// The country code GeoLite2's Country CSV gives a block, as libGeoIP should answer it.
fn country_answers(zip: &Path) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut names = HashMap::new();
    let mut codes = HashMap::new();
    for r in csv_rows(zip, "Locations-en.csv") {
        let code = match (r["country_iso_code"].as_str(), r["continent_code"].as_str()) {
            ("XK", _) => "RS".to_string(),
            ("", "EU") => "EU".to_string(),
            ("", "AS") => "AP".to_string(),
            (c, _) => c.to_string(),
        };
        names.insert(r["geoname_id"].clone(), r["country_name"].clone());
        codes.insert(r["geoname_id"].clone(), code);
    }
    (codes, names)
}

fn block_country(r: &HashMap<String, String>, codes: &HashMap<String, String>) -> Option<String> {
    for col in [
        "geoname_id",
        "represented_country_geoname_id",
        "registered_country_geoname_id",
    ] {
        if let Some(c) = codes.get(&r[col]) {
            return Some(c.clone());
        }
    }
    match (
        r["is_anonymous_proxy"].as_str(),
        r["is_satellite_provider"].as_str(),
    ) {
        ("1", _) => Some("A1".into()),
        (_, "1") => Some("A2".into()),
        _ => None,
    }
}

#[test]
fn libgeoip_agrees_with_the_csv_on_country_and_asn_files() {
    tool("geoiplookup");
    tool("geoiplookup6");
    let (country_zip, asn_zip) = (data(COUNTRY_ZIP), data(ASN_ZIP));
    let (dir, stdout) = build(&[country_zip.clone(), asn_zip.clone()]);
    for f in [
        "GeoIP.dat",
        "GeoIPv6.dat",
        "GeoIPASNum.dat",
        "GeoIPASNumv6.dat",
    ] {
        assert!(stdout.contains(f), "{f} not reported: {stdout}");
    }
    assert!(stdout.contains("345846 networks"), "{stdout}");
    let file = |n: &str| dir.path().join(n);
    let mut rng = fastrand::Rng::with_seed(20191224);
    let mut asks = Vec::new();

    // Country: every answer is libGeoIP's "CC, Name" for the block's country.
    let (codes, _) = country_answers(&country_zip);
    let country_expect = |code: Option<String>| -> Vec<u8> {
        match code {
            Some(c) => c.into_bytes(),
            None => b"IP Address not found".to_vec(),
        }
    };
    let v4_rows = csv_rows(&country_zip, "Blocks-IPv4.csv");
    let v6_rows = csv_rows(&country_zip, "Blocks-IPv6.csv");
    for (rows, max, v6_file) in [
        (&v4_rows, 1300, false),
        (&v6_rows, 800, true),
        (&v4_rows, 450, true),
    ] {
        for r in pick(rows, max, &mut rng) {
            let expect = country_expect(block_country(&r, &codes));
            for (i, addr) in addresses(&r["network"], &mut rng).into_iter().enumerate() {
                let (tool, file_name, addr) = match (addr, v6_file) {
                    (IpAddr::V4(a), true) => {
                        ("geoiplookup6", "GeoIPv6.dat", via_v6(a, i + asks.len()))
                    }
                    (a, true) => ("geoiplookup6", "GeoIPv6.dat", a.to_string()),
                    (a, false) => ("geoiplookup", "GeoIP.dat", a.to_string()),
                };
                asks.push(Ask {
                    tool,
                    file: file(file_name),
                    addr,
                    expect: expect.clone(),
                });
            }
        }
    }
    // geoiplookup prints "CC, Country Name": compare the code only.
    for a in &mut asks {
        if a.expect != b"IP Address not found" {
            a.expect.extend_from_slice(b", ");
        }
    }
    let country_asks = asks.len();

    // ASN: "AS<number> <organisation>" in Latin-1, as libGeoIP prints it.
    let asn_v4 = csv_rows(&asn_zip, "Blocks-IPv4.csv");
    let asn_v6 = csv_rows(&asn_zip, "Blocks-IPv6.csv");
    for (rows, max, v6_file) in [
        (&asn_v4, 600, false),
        (&asn_v6, 350, true),
        (&asn_v4, 150, true),
    ] {
        for r in pick(rows, max, &mut rng) {
            let org = &r["autonomous_system_organization"];
            let text = if org.is_empty() {
                format!("AS{}", r["autonomous_system_number"])
            } else {
                format!("AS{} {org}", r["autonomous_system_number"])
            };
            let mut latin1 = to_latin1(&text);
            latin1.truncate(299);
            for (i, addr) in addresses(&r["network"], &mut rng).into_iter().enumerate() {
                let (tool, file_name, addr) = match (addr, v6_file) {
                    (IpAddr::V4(a), true) => (
                        "geoiplookup6",
                        "GeoIPASNumv6.dat",
                        via_v6(a, i + asks.len()),
                    ),
                    (a, true) => ("geoiplookup6", "GeoIPASNumv6.dat", a.to_string()),
                    (a, false) => ("geoiplookup", "GeoIPASNum.dat", a.to_string()),
                };
                asks.push(Ask {
                    tool,
                    file: file(file_name),
                    addr,
                    expect: as_printed_by(tool, &latin1),
                });
            }
        }
    }
    let asn_asks = asks.len() - country_asks;

    let (total, failures) = run_all(asks);
    assert!(total >= 10_000, "only {total} lookups");
    assert!(
        failures.is_empty(),
        "{} of {total} lookups ({country_asks} Country, {asn_asks} ASN) disagree:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn geoiplookup_shows_the_edition_and_date() {
    let (dir, _) = build(&[data(COUNTRY_ZIP)]);
    for (t, f) in [
        ("geoiplookup", "GeoIP.dat"),
        ("geoiplookup6", "GeoIPv6.dat"),
    ] {
        let out = Command::new(tool(t))
            .arg("-v")
            .arg("-f")
            .arg(dir.path().join(f))
            .arg(if f == "GeoIP.dat" {
                "1.0.1.1"
            } else {
                "2001:200::1"
            })
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("GeoLite2-Country-CSV 20191224"),
            "{t} -v: {text}"
        );
    }
}

#[test]
fn a_truncated_file_fails_its_sample_check() {
    let dir = tempfile::tempdir().unwrap();
    let built = opsd::geoip::build(&[data(COUNTRY_ZIP)], dir.path()).unwrap();
    let b = built
        .files
        .iter()
        .find(|b| b.file_name == "GeoIP.dat")
        .unwrap();
    assert!(b.samples.len() > 1000, "{} samples", b.samples.len());
    let bytes = std::fs::read(dir.path().join("GeoIP.dat")).unwrap();
    assert_eq!(bytes.len() as u64, b.size);
    opsd::geoip::verify_samples(&bytes, &b.samples).unwrap();
    let err = opsd::geoip::verify_samples(&bytes[..bytes.len() / 2], &b.samples).unwrap_err();
    assert!(
        err.to_string().contains("not a legacy GeoIP database"),
        "{err}"
    );
    let mut flipped = bytes.clone();
    // The root's left record: every address below 128.0.0.0 now leads elsewhere.
    flipped[0] ^= 0x01;
    flipped[1] ^= 0x20;
    assert!(opsd::geoip::verify_samples(&flipped, &b.samples).is_err());
}

/// A small GeoLite2-City-CSV zip: long, quoted and non-Latin-1 names, US metro codes, a
/// continent-only location, a block with only a registered country, and `is_anycast`.
fn city_zip(dir: &Path) -> PathBuf {
    let path = dir.join("GeoLite2-City-CSV_20240102.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let folder = "GeoLite2-City-CSV_20240102";
    let locations = "geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,subdivision_1_iso_code,subdivision_1_name,subdivision_2_iso_code,subdivision_2_name,city_name,metro_code,time_zone,is_in_european_union
5375480,en,NA,\"North America\",US,\"United States\",CA,California,,,\"Mountain View\",807,America/Los_Angeles,0
2657896,en,EU,Europe,CH,Switzerland,ZH,Zurich,,,Zürich,,Europe/Zurich,0
3093133,en,EU,Europe,PL,Poland,10,\"Łódź Voivodeship\",,,Łódź,,Europe/Warsaw,1
1581130,en,AS,Asia,VN,Vietnam,HN,Hanoi,,,\"Hà Nội\",,Asia/Bangkok,0
2644000,en,EU,Europe,GB,\"United Kingdom\",WLS,Wales,AGY,Anglesey,Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch,,Europe/London,0
6167865,en,NA,\"North America\",CA,Canada,ON,Ontario,,,Toronto,,America/Toronto,0
4140963,en,NA,\"North America\",US,\"United States\",DC,\"District of Columbia\",,,\"Washington, \"\"D.C.\"\"\",511,America/New_York,0
1850147,en,AS,Asia,JP,Japan,13,Tokyo,,,東京,,Asia/Tokyo,0
6255148,en,EU,Europe,,,,,,,,,,0
6252001,en,NA,\"North America\",US,\"United States\",,,,,,,America/Chicago,0
";
    let blocks4 = "network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,postal_code,latitude,longitude,accuracy_radius,is_anycast
8.8.8.0/24,5375480,6252001,,0,0,94043,37.4192,-122.0574,1000,
10.0.0.0/8,2657896,2657896,,0,0,8001,47.3667,8.55,50,0
11.0.0.0/16,3093133,3093133,,0,0,90-001,51.75,19.4667,20,0
12.0.0.0/16,1581130,1581130,,0,0,,21.0245,105.8412,50,0
13.0.0.0/16,2644000,2644000,,0,0,LL61 5UJ,53.2232,-4.2004,5,0
14.0.0.0/16,6167865,6167865,,0,0,M5V,43.6547,-79.3623,10,0
15.0.0.0/16,4140963,6252001,,0,0,20001,38.9122,-77.0177,5,1
16.0.0.0/16,1850147,1850147,,0,0,100-0001,35.6895,139.6917,100,0
17.0.0.0/16,6255148,,,0,0,,51.0,9.0,500,0
18.0.0.0/16,,6252001,,0,0,,37.751,-97.822,1000,0
";
    let blocks6 = "network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,postal_code,latitude,longitude,accuracy_radius,is_anycast
2001:4860::/32,5375480,6252001,,0,0,94043,37.4192,-122.0574,1000,
2a00:1450::/32,2657896,2657896,,0,0,8001,47.3667,8.55,50,0
";
    for (name, text) in [
        ("GeoLite2-City-Locations-en.csv", locations),
        ("GeoLite2-City-Blocks-IPv4.csv", blocks4),
        ("GeoLite2-City-Blocks-IPv6.csv", blocks6),
    ] {
        z.start_file(format!("{folder}/{name}"), opts).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.finish().unwrap();
    path
}

#[test]
fn libgeoip_reads_city_records() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = city_zip(tmp.path());
    let (dir, stdout) = build(&[zip]);
    assert!(stdout.contains("GeoIPCity.dat") && stdout.contains("GeoIPCityv6.dat"));
    let city = dir.path().join("GeoIPCity.dat");
    let city6 = dir.path().join("GeoIPCityv6.dat");
    // geoiplookup prints: country, region, region name, city, postal, lat, lon, metro, area
    // (names in UTF-8); geoiplookup6 the same without the region name, names in Latin-1.
    let cases: [(&str, &str, f64, f64, &str); 10] = [
        (
            "8.8.8.8",
            "US, CA, California, Mountain View, 94043",
            37.4192,
            -122.0574,
            "807, 0",
        ),
        (
            "10.1.2.3",
            "CH, N/A, N/A, Zürich, 8001",
            47.3667,
            8.55,
            "0, 0",
        ),
        (
            "11.0.0.1",
            "PL, N/A, N/A, Lódz, 90-001",
            51.75,
            19.4667,
            "0, 0",
        ),
        (
            "12.0.255.255",
            "VN, N/A, N/A, Hà Nôi, N/A",
            21.0245,
            105.8412,
            "0, 0",
        ),
        // 50 bytes: 1 country + 3 NULs + 6 coordinates + 8 postal leave 32 for the city.
        (
            "13.0.1.1",
            "GB, N/A, N/A, Llanfairpwllgwyngyllgogerychwyrn, LL61 5UJ",
            53.2232,
            -4.2004,
            "0, 0",
        ),
        (
            "14.0.0.9",
            "CA, ON, Ontario, Toronto, M5V",
            43.6547,
            -79.3623,
            "0, 0",
        ),
        (
            "15.0.3.4",
            "US, DC, District of Columbia, Washington, \"D.C.\", 20001",
            38.9122,
            -77.0177,
            "511, 0",
        ),
        (
            "16.0.0.1",
            "JP, N/A, N/A, ??, 100-0001",
            35.6895,
            139.6917,
            "0, 0",
        ),
        ("17.0.0.1", "EU, N/A, N/A, N/A, N/A", 51.0, 9.0, "0, 0"),
        (
            "18.0.0.1",
            "US, N/A, N/A, N/A, N/A",
            37.751,
            -97.822,
            "0, 0",
        ),
    ];
    let mut asks = Vec::new();
    let mut ask = |tool: &'static str, file: &Path, addr: String, line: Option<String>| {
        let expect = match line {
            None => b"IP Address not found".to_vec(),
            Some(l) if tool == "geoiplookup" => l.into_bytes(),
            Some(l) => {
                let mut parts: Vec<&str> = l.splitn(4, ", ").collect();
                parts.remove(2);
                to_latin1(&parts.join(", "))
            }
        };
        asks.push(Ask {
            tool,
            file: file.to_path_buf(),
            addr,
            expect,
        });
    };
    for (addr, head, lat, lon, tail) in cases {
        let line = format!("{head}, {}, {}, {tail}", coord(lat), coord(lon));
        ask("geoiplookup", &city, addr.into(), Some(line.clone()));
        let v4: Ipv4Addr = addr.parse().unwrap();
        for form in 0..3 {
            ask("geoiplookup6", &city6, via_v6(v4, form), Some(line.clone()));
        }
    }
    ask("geoiplookup", &city, "19.0.0.1".into(), None);
    ask("geoiplookup6", &city6, "::ffff:19.0.0.1".into(), None);
    let mv = "US, CA, California, Mountain View, 94043";
    let zh = "CH, N/A, N/A, Zürich, 8001";
    for (addr, line) in [
        (
            "2001:4860::8888",
            Some(format!(
                "{mv}, {}, {}, 807, 0",
                coord(37.4192),
                coord(-122.0574)
            )),
        ),
        (
            "2a00:1450:1::1",
            Some(format!("{zh}, {}, {}, 0, 0", coord(47.3667), coord(8.55))),
        ),
        ("2a01::1", None),
    ] {
        ask("geoiplookup6", &city6, addr.into(), line);
    }
    let (total, failures) = run_all(asks);
    assert!(
        failures.is_empty(),
        "{} of {total}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A coordinate as libGeoIP prints it: stored as `(deg + 180) * 10000` in 3 bytes, read back
/// as a C float, printed with `%f`.
fn coord(deg: f64) -> String {
    let stored = ((deg + 180.0) * 10000.0).round();
    format!("{:.6}", (stored / 10000.0 - 180.0) as f32)
}

#[test]
fn a_missing_or_non_directory_output_dir_is_named_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("GeoIP");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    for (out_dir, says) in [(&missing, "does not exist"), (&file, "is not a directory")] {
        let out = Command::new(crate::util::OPSD)
            .args(["geoip", "build", "--input"])
            .arg(data(COUNTRY_ZIP))
            .arg("--output-dir")
            .arg(out_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--output-dir"), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_second_build_of_the_same_zip_changes_nothing() {
    let (dir, first) = build(&[data(COUNTRY_ZIP)]);
    assert!(first.contains("(2 changed)"), "{first}");
    let out = Command::new(crate::util::OPSD)
        .args(["geoip", "build", "--input"])
        .arg(data(COUNTRY_ZIP))
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("unchanged "), "{stdout}");
    assert!(stdout.contains("(0 changed)"), "{stdout}");
}

/// A directory made immutable with `chattr +i` (root ignores permission bits, not this flag);
/// the flag is cleared on drop so the temporary directory can be removed.
struct Immutable(PathBuf);

impl Immutable {
    fn new(dir: PathBuf) -> Immutable {
        let chattr = Path::new("/usr/bin/chattr");
        assert!(
            chattr.is_file(),
            "/usr/bin/chattr not found: apt-get install e2fsprogs"
        );
        let st = Command::new(chattr).arg("+i").arg(&dir).status().unwrap();
        assert!(st.success(), "chattr +i {} failed", dir.display());
        Immutable(dir)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn an_unwritable_output_dir_is_found_before_building_and_its_cause_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("GeoIP");
    std::fs::create_dir(&out_dir).unwrap();
    let _frozen = Immutable::new(out_dir.clone());
    let out = Command::new(crate::util::OPSD)
        .args(["geoip", "build", "--input"])
        .arg(data(COUNTRY_ZIP))
        .arg("--output-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--output-dir"), "{stderr}");
    assert!(stderr.contains("is not writable"), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    // Checked first: nothing was built, so no file was reported and no log line says so.
    assert!(!stdout.contains("wrote"), "{stdout}");
    assert!(!stderr.contains("building legacy GeoIP files"), "{stderr}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

/// A small GeoLite2-Country-CSV zip (CN, AU, JP) whose IPv4 blocks are `blocks4`, in order.
fn country_zip_with(dir: &Path, blocks4: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("GeoLite2-Country-CSV_20240102.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let folder = "GeoLite2-Country-CSV_20240102";
    let locations = "geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union
1814991,en,AS,Asia,CN,China,0
2077456,en,OC,Oceania,AU,Australia,0
1861060,en,AS,Asia,JP,Japan,0
";
    let header = "network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider\n";
    let mut v4 = header.to_string();
    for (net, id) in blocks4 {
        v4.push_str(&format!("{net},{id},{id},,0,0\n"));
    }
    let v6 = format!("{header}2001:200::/23,1861060,1861060,,0,0\n");
    for (name, text) in [
        ("GeoLite2-Country-Locations-en.csv", locations),
        ("GeoLite2-Country-Blocks-IPv4.csv", v4.as_str()),
        ("GeoLite2-Country-Blocks-IPv6.csv", v6.as_str()),
    ] {
        z.start_file(format!("{folder}/{name}"), opts).unwrap();
        z.write_all(text.as_bytes()).unwrap();
    }
    z.finish().unwrap();
    path
}

/// Runs `opsd geoip build` on `zip` into `out`; its exit code, stdout and stderr.
fn run_build(zip: &Path, out: &Path) -> (Option<i32>, String, String) {
    let o = Command::new(crate::util::OPSD)
        .args(["geoip", "build", "--input"])
        .arg(zip)
        .arg("--output-dir")
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn overlapping_networks_give_the_most_specific_answer_in_any_order_with_a_warning() {
    let cn = ("1.0.1.0/24", "1814991");
    let cn2 = ("1.0.2.0/23", "1814991");
    let jp = ("1.0.8.0/21", "1861060");
    let au = ("1.0.0.0/8", "2077456");
    let geoiplookup = tool("geoiplookup");
    // The /8 after the more specific rows (the case), before them, and in between.
    for (blocks, overlapping) in [
        (vec![cn, cn2, jp, au], 1),
        (vec![au, cn, cn2, jp], 3),
        (vec![cn, au, jp, cn2], 3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let zip = country_zip_with(dir.path(), &blocks);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let (code, stdout, stderr) = run_build(&zip, &out);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        let warning = format!("{overlapping} rows overlap networks listed before them");
        assert!(stderr.contains(&warning), "{blocks:?}: {stderr}");
        assert!(
            stderr.contains("GeoLite2-Country-Blocks-IPv4.csv:"),
            "{stderr}"
        );
        for (addr, want) in [
            ("1.0.1.1", "CN, China"),
            ("1.0.3.200", "CN, China"),
            ("1.0.9.9", "JP, Japan"),
            ("1.0.0.1", "AU, Australia"),
            ("1.200.0.1", "AU, Australia"),
            ("2.0.0.1", "IP Address not found"),
        ] {
            let o = Command::new(&geoiplookup)
                .arg("-f")
                .arg(out.join("GeoIP.dat"))
                .arg(addr)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&o.stdout);
            assert!(said.contains(want), "{blocks:?}: {addr}: {said}");
        }
    }
}

#[test]
fn the_same_network_twice_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let zip = country_zip_with(
        dir.path(),
        &[("1.0.1.0/24", "1814991"), ("1.0.1.0/24", "2077456")],
    );
    let (code, stdout, stderr) = run_build(&zip, dir.path());
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("GeoLite2-Country-Blocks-IPv4.csv:3: network 1.0.1.0/24 is listed twice"),
        "{stderr}"
    );
    assert!(!dir.path().join("GeoIP.dat").exists());
}

/// A raw deflate stream of `times` MiB of `byte`: one MiB compressed once with a sync flush
/// (byte-aligned, not final), repeated, then an empty final block. Valid because every copy's
/// back-references land on the same byte. A few MB on disk for GiBs unpacked.
fn deflate_repeated(byte: u8, times: u64) -> Vec<u8> {
    let chunk = vec![byte; 1 << 20];
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut one = Vec::with_capacity(1 << 18);
    c.compress_vec(&chunk, &mut one, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(c.total_in(), 1 << 20, "the chunk did not fit the buffer");
    let mut out = Vec::with_capacity(one.len() * times as usize + 2);
    for _ in 0..times {
        out.extend_from_slice(&one);
    }
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

/// CRC-32 (IEEE), bit by bit: only for the small members.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One member of [`write_zip`]: a small stored text, or a huge deflated run of one byte.
enum Member<'a> {
    Text(&'a str),
    /// `MiB` mebibytes of `byte`. Its CRC is left 0: every use stops before the member's end.
    Run {
        byte: u8,
        mib: u64,
    },
}

/// Writes a zip (no zip64: every size stays below 4 GiB) of `members` in a
/// `GeoLite2-Country-CSV_20240102/` folder.
fn write_zip(path: &Path, members: &[(&str, Member)]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut central = Vec::new();
    let mut offset = 0u64;
    for (name, member) in members {
        let name = format!("GeoLite2-Country-CSV_20240102/{name}");
        let (method, data, size, crc): (u16, Vec<u8>, u64, u32) = match member {
            Member::Text(t) => (
                0,
                t.as_bytes().to_vec(),
                t.len() as u64,
                crc32(t.as_bytes()),
            ),
            Member::Run { byte, mib } => (8, deflate_repeated(*byte, *mib), mib << 20, 0),
        };
        assert!(size < u64::from(u32::MAX));
        let fields = |h: &mut Vec<u8>| {
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // time
            h.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(size as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        let mut local = 0x0403_4b50u32.to_le_bytes().to_vec();
        fields(&mut local);
        local.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        fields(&mut central);
        central.extend_from_slice(&[0; 6]); // comment len, disk, internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&(offset as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        out.write_all(&local).unwrap();
        out.write_all(&data).unwrap();
        offset += (local.len() + data.len()) as u64;
    }
    out.write_all(&central).unwrap();
    let mut end = 0x0605_4b50u32.to_le_bytes().to_vec();
    end.extend_from_slice(&[0; 4]);
    end.extend_from_slice(&(members.len() as u16).to_le_bytes());
    end.extend_from_slice(&(members.len() as u16).to_le_bytes());
    end.extend_from_slice(&(central.len() as u32).to_le_bytes());
    end.extend_from_slice(&(offset as u32).to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    out.write_all(&end).unwrap();
    out.flush().unwrap();
}

/// A Country zip whose `Locations-en.csv` (the first member a Country build reads) is `bomb`.
fn country_bomb(dir: &Path, bomb: Member) -> PathBuf {
    let path = dir.join("GeoLite2-Country-CSV_20240102.zip");
    let blocks =
        "network,geoname_id,registered_country_geoname_id,represented_country_geoname_id\n";
    write_zip(
        &path,
        &[
            ("GeoLite2-Country-Locations-en.csv", bomb),
            ("GeoLite2-Country-Blocks-IPv4.csv", Member::Text(blocks)),
            ("GeoLite2-Country-Blocks-IPv6.csv", Member::Text(blocks)),
        ],
    );
    path
}

/// How a measured build ended.
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    /// Its peak resident memory, as GNU time read it from the kernel (wait4 of the build).
    max_rss_bytes: u64,
    stderr: String,
}

/// GNU time, the build's parent. Why a parent between the test and the build: a child's
/// ru_maxrss counts the memory of the process it was spawned from (posix_spawn's child runs in
/// the parent's address space until exec, and the kernel keeps that high-water mark), so wait4
/// here would count this test process, which other tests make large.
const GNU_TIME: &str = "/usr/bin/time";

/// A build running under GNU time, which writes the build's peak RSS to `rss_path` at its end.
struct Build {
    /// GNU time; it exits with the build's status.
    time: std::process::Child,
    err_path: PathBuf,
    rss_path: PathBuf,
}

impl Build {
    /// The build's own process (GNU time's only child), once it has started.
    fn pid(&self) -> nix::unistd::Pid {
        let id = self.time.id();
        let children =
            std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        let pid = children
            .split_whitespace()
            .next()
            .expect("GNU time has no child");
        nix::unistd::Pid::from_raw(pid.parse().unwrap())
    }
}

/// Starts `opsd geoip build` on `zip` with `$TMPDIR` set to `tmp`, under GNU time; stderr goes
/// to a file.
fn spawn_build(zip: &Path, out: &Path, tmp: &Path) -> Build {
    assert!(
        Path::new(GNU_TIME).is_file(),
        "{GNU_TIME} is missing: apt-get install time (or run .ci/setup)"
    );
    let err_path = tmp.with_extension("stderr");
    let rss_path = tmp.with_extension("rss");
    let time = Command::new(GNU_TIME)
        .args(["-f", "%M", "-o"])
        .arg(&rss_path)
        .arg(crate::util::OPSD)
        .args(["geoip", "build", "--input"])
        .arg(zip)
        .arg("--output-dir")
        .arg(out)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    Build {
        time,
        err_path,
        rss_path,
    }
}

/// Waits (polling, up to `limit`) for the build to end and reads its peak RSS; kills it and
/// fails when it does not end in time.
fn wait_measured(build: &mut Build, limit: Duration) -> Ended {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = build.time.try_wait().unwrap() {
            // GNU time writes "Command terminated by signal N" or "Command exited with
            // non-zero status N" first, then the format: the peak RSS in KiB.
            let report = std::fs::read_to_string(&build.rss_path).unwrap_or_default();
            let signal = report
                .lines()
                .find_map(|l| l.strip_prefix("Command terminated by signal "))
                .and_then(|n| n.trim().parse().ok());
            let kib: u64 = report
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or_else(|| panic!("no peak RSS from GNU time: {report:?}"));
            return Ended {
                code: if signal.is_some() {
                    None
                } else {
                    status.code()
                },
                signal,
                max_rss_bytes: kib * 1024,
                stderr: std::fs::read_to_string(&build.err_path).unwrap_or_default(),
            };
        }
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(build.pid(), nix::sys::signal::Signal::SIGKILL);
            let _ = build.time.wait();
            panic!(
                "opsd geoip build still running after {limit:?}: {}",
                std::fs::read_to_string(&build.err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not a timing: the bound on memory a build may use whatever its input.
const RSS_BOUND: u64 = 200 << 20;
/// How long a refused bomb may take before the test calls it a hang (main reads it for minutes).
const HANG: Duration = Duration::from_secs(120);

#[test]
fn a_member_of_zeros_without_a_line_break_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB: under the 2 GiB member cap, so only the row cap stops it.
    let zip = country_bomb(dir.path(), Member::Run { byte: 0, mib: 1024 });
    assert!(std::fs::metadata(&zip).unwrap().len() < 20 << 20);
    let (tmp, out) = (dir.path().join("tmp"), dir.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&out).unwrap();
    let mut build = spawn_build(&zip, &out, &tmp);
    let ended = wait_measured(&mut build, HANG);
    assert_eq!(ended.code, Some(2), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("GeoLite2-Country-Locations-en.csv:1: a row longer than 65536 bytes"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.max_rss_bytes < RSS_BOUND,
        "peak RSS {} MB",
        ended.max_rss_bytes >> 20
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "scratch left");
}

#[test]
fn a_member_of_line_breaks_past_the_size_cap_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // 3 GiB of line breaks: past the 2 GiB member cap of the download path.
    let zip = country_bomb(
        dir.path(),
        Member::Run {
            byte: b'\n',
            mib: 3072,
        },
    );
    let (tmp, out) = (dir.path().join("tmp"), dir.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&out).unwrap();
    let mut build = spawn_build(&zip, &out, &tmp);
    let ended = wait_measured(&mut build, HANG);
    assert_eq!(ended.code, Some(2), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("GeoLite2-Country-Locations-en.csv\" unpacks to 3221225472 bytes, more than the limit of 2147483648"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.max_rss_bytes < RSS_BOUND,
        "peak RSS {} MB",
        ended.max_rss_bytes >> 20
    );
}

#[test]
fn a_build_stopped_by_sigterm_removes_its_scratch_directory() {
    let dir = tempfile::tempdir().unwrap();
    // 1.5 GiB of line breaks, under the cap: the build is busy reading it when the signal comes.
    let zip = country_bomb(
        dir.path(),
        Member::Run {
            byte: b'\n',
            mib: 1536,
        },
    );
    let (tmp, out) = (dir.path().join("tmp"), dir.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&out).unwrap();
    let mut build = spawn_build(&zip, &out, &tmp);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(
            build.time.try_wait().unwrap().is_none(),
            "the build ended before its scratch directory was seen"
        );
        assert!(Instant::now() < deadline, "no scratch directory appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(build.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let ended = wait_measured(&mut build, HANG);
    assert_eq!(ended.signal, None, "{}", ended.stderr);
    assert_eq!(ended.code, Some(128 + 15), "{}", ended.stderr);
    assert!(
        ended.stderr.contains("stopped by SIGTERM"),
        "{}",
        ended.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "scratch left: {left:?}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn the_next_build_removes_scratch_directories_whose_build_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (tmp, out) = (dir.path().join("tmp"), dir.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    std::fs::create_dir(&out).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = tmp.join(format!("opsd-geoip-build.{dead}.Ab12Cd"));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("GeoIPCity.dat"), vec![0u8; 1 << 20]).unwrap();
    let mut build = spawn_build(&data(COUNTRY_ZIP), &out, &tmp);
    let ended = wait_measured(&mut build, HANG);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(!stale.exists(), "{}", ended.stderr);
    assert!(
        ended
            .stderr
            .contains("removed the scratch directory of an earlier build"),
        "{}",
        ended.stderr
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert!(out.join("GeoIP.dat").is_file());
}
