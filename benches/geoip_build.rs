//! Build time and peak memory of `opsd geoip build` for the committed Country and ASN zips
//! and a generated City-sized zip (3 million IPv4 networks, 120,000 locations). Each build
//! runs in a child process of this binary so its peak RSS (VmHWM) is its own.
//!
//! Run: `cargo bench --bench geoip_build`. The City zip is generated once under
//! `target/geoip-bench/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// IPv4 networks in the generated City zip.
const CITY_V4_NETWORKS: usize = 3_000_000;
/// IPv6 networks in the generated City zip.
const CITY_V6_NETWORKS: usize = 300_000;
/// Locations in the generated City zip.
const CITY_LOCATIONS: usize = 120_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/geoip-bench");
    std::fs::create_dir_all(&work).unwrap();
    let city = work.join("GeoLite2-City-CSV_20240102.zip");
    if !city.exists() {
        let t = Instant::now();
        generate_city(&city);
        eprintln!(
            "generated {} in {:.1} s",
            city.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let data = root.join("tests/data/geoip");
    println!(
        "{:<40} {:>9} {:>9} {:>12} {:>10}",
        "input", "wall s", "CPU s", "peak RSS MB", "files MB"
    );
    for zip in [
        data.join("GeoLite2-Country-CSV_20191224.zip"),
        data.join("GeoLite2-ASN-CSV_20191224.zip"),
        city,
    ] {
        let out = work.join("out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let run = Command::new(std::env::current_exe().unwrap())
            .arg("--child")
            .arg(&zip)
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "build of {} failed: {}",
            zip.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let name = zip.file_name().unwrap().to_string_lossy().into_owned();
        println!("{name:<40} {}", String::from_utf8_lossy(&run.stdout).trim());
    }
}

/// Builds one zip and prints wall and CPU seconds, peak RSS (MB) and output size (MB).
fn child(zip: &Path, out: &Path) {
    let t = Instant::now();
    let cpu0 = cpu_seconds();
    let built = opsd::geoip::build(&[zip.to_path_buf()], out).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let size: u64 = built.files.iter().map(|b| b.size).sum();
    println!(
        "{secs:>9.2} {cpu:>9.2} {:>12.1} {:>10.1}",
        peak_rss_kb() as f64 / 1024.0,
        size as f64 / 1e6
    );
}

/// User + system CPU time of this process from /proc/self/stat (one core's worth of work,
/// whatever else the machine is doing).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); here 11 and 12 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// VmHWM from /proc/self/status, in kB.
fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Writes a GeoLite2-City-CSV zip of City size: sorted IPv4 networks (runs of /21 to /30,
/// some gaps),
/// runs of blocks sharing a location, several postal codes per location, some names outside
/// Latin-1 and some longer than a record holds.
fn generate_city(path: &PathBuf) {
    let mut rng = fastrand::Rng::with_seed(42);
    let tmp = path.with_extension("zip.tmp");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&tmp).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    let folder = "GeoLite2-City-CSV_20240102";
    let countries = [
        "US", "US", "US", "DE", "GB", "FR", "CA", "JP", "CN", "BR", "IN", "RU", "PL", "VN", "XK",
        "NL", "SE", "IT", "ES", "AU",
    ];
    let syllables = [
        "ber", "lin", "mün", "chen", "ło", "dź", "hà", "nội", "san", "ta", "ville", "ford",
    ];

    z.start_file(format!("{folder}/GeoLite2-City-Locations-en.csv"), opts)
        .unwrap();
    let mut w = std::io::BufWriter::new(&mut z);
    writeln!(w, "geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,subdivision_1_iso_code,subdivision_1_name,subdivision_2_iso_code,subdivision_2_name,city_name,metro_code,time_zone,is_in_european_union").unwrap();
    let mut coords = Vec::with_capacity(CITY_LOCATIONS);
    for i in 0..CITY_LOCATIONS {
        let cc = countries[rng.usize(..countries.len())];
        let mut city: String = (0..rng.usize(2..6))
            .map(|_| syllables[rng.usize(..syllables.len())])
            .collect();
        if i % 97 == 0 {
            city = city.repeat(6);
        }
        let metro = if cc == "US" {
            format!("{}", rng.u32(500..882))
        } else {
            String::new()
        };
        writeln!(
            w,
            "{},en,EU,Europe,{cc},Country,S{},Region,,,\"{city}, {}\",{metro},Europe/Berlin,0",
            1_000_000 + i,
            rng.u32(1..60),
            i
        )
        .unwrap();
        coords.push((rng.f64() * 160.0 - 80.0, rng.f64() * 340.0 - 170.0));
    }
    drop(w);

    let header = "network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider,postal_code,latitude,longitude,accuracy_radius,is_anycast";
    z.start_file(format!("{folder}/GeoLite2-City-Blocks-IPv4.csv"), opts)
        .unwrap();
    let mut w = std::io::BufWriter::new(&mut z);
    writeln!(w, "{header}").unwrap();
    let mut cursor: u64 = 1 << 24;
    let mut loc = 0;
    let mut prefix = 24;
    for _ in 0..CITY_V4_NETWORKS {
        if rng.u8(..8) == 0 {
            prefix = 21 + rng.u32(..10); // runs of equal-sized networks, as allocations come
        }
        let size = 1u64 << (32 - prefix);
        cursor = cursor.div_ceil(size) * size;
        if rng.u8(..50) == 0 {
            cursor += size; // a gap
        }
        if rng.u8(..4) == 0 {
            loc = rng.usize(..CITY_LOCATIONS);
        }
        let (lat, lon) = coords[loc];
        let postal = if loc % 4 == 0 && rng.bool() {
            format!("{}", 10_000 + loc % 7 * 11 + rng.usize(..2))
        } else {
            String::new()
        };
        let a = std::net::Ipv4Addr::from(cursor as u32);
        writeln!(
            w,
            "{a}/{prefix},{},{},,0,0,{postal},{lat:.4},{lon:.4},{},0",
            1_000_000 + loc,
            1_000_000 + loc,
            rng.u32(1..1000)
        )
        .unwrap();
        cursor += size;
    }
    assert!(
        cursor < 1 << 32,
        "generated IPv4 networks overflow the address space"
    );
    drop(w);

    z.start_file(format!("{folder}/GeoLite2-City-Blocks-IPv6.csv"), opts)
        .unwrap();
    let mut w = std::io::BufWriter::new(&mut z);
    writeln!(w, "{header}").unwrap();
    let mut cursor: u128 = 0x2001_0000_u128 << 96;
    for _ in 0..CITY_V6_NETWORKS {
        let prefix = 32 + rng.u32(..17);
        let size = 1u128 << (128 - prefix);
        cursor = cursor.div_ceil(size) * size;
        if rng.u8(..4) == 0 {
            loc = rng.usize(..CITY_LOCATIONS);
        }
        let (lat, lon) = coords[loc];
        let a = std::net::Ipv6Addr::from(cursor);
        writeln!(
            w,
            "{a}/{prefix},{},{},,0,0,,{lat:.4},{lon:.4},100,0",
            1_000_000 + loc,
            1_000_000 + loc
        )
        .unwrap();
        cursor += size;
    }
    drop(w);
    z.finish().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
