//! Turns one GeoLite2 CSV zip into its two legacy files (IPv4 and IPv6), the steps all
//! editions share: stream the blocks into the tree, link the IPv4 tree into the IPv6 one,
//! write each file and keep sample answers for the installer's check. What differs between
//! editions comes from their [`Edition`]; this module names none of them.

use super::csv::CsvReader;
use super::dat::{comment, write_dat, DbType};
use super::edition::Edition;
use super::error::GeoipError;
use super::network::Network;
use super::reader::{v4_in_v6, Sample};
use super::source::Source;
use super::tree::{Finished, Inserted, Tree, MAX_VALUE};
use std::io::{BufRead, Write};
use std::net::IpAddr;

/// Every this many networks one is kept for sample lookups.
const SAMPLE_EVERY: u64 = 512;
/// At most this many IPv4 networks are sampled again through a v6 file.
const V4_SAMPLES_IN_V6: usize = 1000;

/// One legacy `.dat` file the build wrote: its name, source, figures and the sample answers
/// to check it with (the `geoip` job's staged file is [`crate::jobs::geoip::BuiltFile`]).
#[derive(Debug, Clone)]
pub struct WrittenDat {
    /// The file's name under libGeoIP's defaults, e.g. `GeoIP.dat`.
    pub file_name: &'static str,
    /// The source edition, e.g. `GeoLite2-Country-CSV`.
    pub edition: String,
    /// The source's release date, `YYYYMMDD` (empty when the zip does not say).
    pub date: String,
    /// CSV networks the file answers (a v6 file counts the IPv4 ones it answers too).
    pub networks: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// Addresses with the answers the CSV gives, for [`super::verify_samples`].
    pub samples: Vec<Sample>,
}

/// What loading one Blocks CSV into a tree found.
struct Loaded {
    /// Networks put into the tree.
    pub networks: u64,
    /// Rows skipped because no location they name maps to an answer.
    pub unmapped: u64,
    /// IPv6 rows inside `::/96`, `::ffff:0:0/96` or `2002::/16`, answered by the IPv4 tree.
    pub shadowed: u64,
    /// Rows whose network shares addresses with a row before it (around it or inside it).
    pub overlapping: u64,
    /// Where the first of those is, `member:line`.
    pub first_overlap: Option<String>,
    /// Some of the networks with their leaf values, to make samples from.
    pub picks: Vec<(Network, u32)>,
}

/// Streams a Blocks CSV into `tree` under `root`; `value` gives a row's leaf value or None to
/// skip the row. Overlapping networks are allowed (counted, and each address takes the most
/// specific one's answer, as MaxMind's own readers do); the same network twice is an error at
/// its second line.
fn load_blocks<R: BufRead>(
    csv: &mut CsvReader<R>,
    v4: bool,
    tree: &mut Tree,
    root: u32,
    mut value: impl FnMut(&CsvReader<R>) -> Result<Option<u32>, GeoipError>,
) -> Result<Loaded, GeoipError> {
    let col = csv.column("network")?;
    let mut loaded = Loaded {
        networks: 0,
        unmapped: 0,
        shadowed: 0,
        overlapping: 0,
        first_overlap: None,
        picks: Vec::new(),
    };
    while csv.next_row()? {
        let net = Network::parse(csv.field(col))
            .filter(|n| n.v4 == v4)
            .ok_or_else(|| {
                let family = if v4 { "IPv4" } else { "IPv6" };
                csv.error(&format!("not an {family} network: {:?}", csv.field(col)))
            })?;
        if !v4 && is_linked(&net) {
            loaded.shadowed += 1;
            continue;
        }
        match value(csv)? {
            Some(v) if v > MAX_VALUE => {
                return Err(csv.error(&format!(
                    "answer data beyond {MAX_VALUE} bytes; the legacy format cannot address it"
                )));
            }
            Some(v) => {
                match tree.insert(root, &net, v) {
                    Inserted::Alone => {}
                    Inserted::Overlapping => {
                        loaded.overlapping += 1;
                        loaded.first_overlap.get_or_insert_with(|| csv.location());
                    }
                    Inserted::Duplicate => {
                        return Err(csv.error(&format!(
                            "network {} is listed twice; each network must appear once",
                            csv.field(col)
                        )));
                    }
                }
                if loaded.networks % SAMPLE_EVERY == 0 {
                    loaded.picks.push((net, v));
                }
                loaded.networks += 1;
            }
            None => loaded.unmapped += 1,
        }
    }
    Ok(loaded)
}

/// The prefixes under which a v6 file links the IPv4 tree: `::/96` (IPv4-compatible),
/// `::ffff:0:0/96` (IPv4-mapped, what nginx asks) and `2002::/16` (6to4).
const LINKS: [(u128, u8); 3] = [(0, 96), (0xffff << 32, 96), (0x2002 << 112, 16)];

/// True when `net` lies inside one of the [`LINKS`].
fn is_linked(net: &Network) -> bool {
    LINKS.iter().any(|&(bits, prefix)| {
        net.prefix >= prefix
            && net.bits >> (128 - u32::from(prefix)) == bits >> (128 - u32::from(prefix))
    })
}

/// Links the IPv4 tree `v4_root` under every prefix of [`LINKS`] in the v6 tree.
fn link_v4(tree: &mut Tree, v6_root: u32, v4_root: u32) {
    for (bits, prefix) in LINKS {
        tree.link(v6_root, bits, prefix, v4_root);
    }
}

/// Samples for `picks`: each network's first, last and one random address.
fn samples(picks: &[(Network, u32)], render: impl Fn(u32) -> Option<String>) -> Vec<Sample> {
    let mut rng = fastrand::Rng::with_seed(0x0006_e01b);
    let mut out = Vec::with_capacity(picks.len() * 3);
    for (net, v) in picks {
        let expect = render(*v);
        for addr in [net.first(), net.last(), net.pick(rng.u128(..))] {
            out.push(Sample {
                addr,
                expect: expect.clone(),
            });
        }
    }
    out
}

/// IPv4 samples asked again through a v6 file, in all three linked forms.
fn v4_samples_in_v6(v4: &[Sample]) -> Vec<Sample> {
    v4.iter()
        .take(V4_SAMPLES_IN_V6)
        .filter_map(|s| match s.addr {
            IpAddr::V4(a) => Some(v4_in_v6(a).map(|a6| Sample {
                addr: IpAddr::V6(a6),
                expect: s.expect.clone(),
            })),
            IpAddr::V6(_) => None,
        })
        .flatten()
        .collect()
}

/// Builds both files of edition `E` from `src`, handing each one's bytes to the writer
/// `create` returns for its file name. The IPv6 file links the IPv4 tree, so it answers IPv4
/// addresses too.
pub(super) fn build_edition<E: Edition, W: Write>(
    src: &mut Source,
    create: &mut dyn FnMut(&'static str) -> std::io::Result<W>,
) -> Result<Vec<WrittenDat>, GeoipError> {
    let mut edition = E::load(src)?;
    let [v4_file, v6_file] = E::FILES;
    let mut tree = Tree::new();

    let v4_root = tree.new_root();
    let v4 = load_family(src, &mut edition, &mut tree, v4_root, true)?;
    log_skips(src, "ipv4", &v4);
    let v4_samples = samples(&v4.picks, |v| edition.render(v));
    let finished = tree.finish(v4_root, 0);
    let mut out = vec![emit(
        create,
        src,
        v4_file,
        &finished,
        edition.data(),
        (v4.networks, v4_samples.clone()),
    )?];
    drop(finished);

    let v6_root = tree.new_root();
    let v6 = load_family(src, &mut edition, &mut tree, v6_root, false)?;
    log_skips(src, "ipv6", &v6);
    link_v4(&mut tree, v6_root, v4_root);
    let mut v6_samples = samples(&v6.picks, |v| edition.render(v));
    v6_samples.extend(v4_samples_in_v6(&v4_samples));
    let finished = tree.finish(v6_root, v4_root);
    out.push(emit(
        create,
        src,
        v6_file,
        &finished,
        edition.data(),
        (v6.networks + v4.networks, v6_samples),
    )?);
    Ok(out)
}

/// Streams one family's Blocks CSV (`Blocks-IPv4.csv` or `Blocks-IPv6.csv`) into `tree`
/// under `root`, each row's leaf value from `edition`.
fn load_family<E: Edition>(
    src: &mut Source,
    edition: &mut E,
    tree: &mut Tree,
    root: u32,
    v4: bool,
) -> Result<Loaded, GeoipError> {
    let member = if v4 {
        "Blocks-IPv4.csv"
    } else {
        "Blocks-IPv6.csv"
    };
    let mut csv = src.csv(member)?;
    let cols = E::columns(&csv)?;
    load_blocks(&mut csv, v4, tree, root, |row| edition.value(&cols, row))
}

/// Writes one file (`file`: its name and type) through `create` and describes it with
/// `answered`: how many CSV networks it answers and the samples to check it with.
fn emit<W: Write>(
    create: &mut dyn FnMut(&'static str) -> std::io::Result<W>,
    src: &Source,
    (file, db): (&'static str, DbType),
    tree: &Finished,
    data: &[u8],
    (networks, samples): (u64, Vec<Sample>),
) -> Result<WrittenDat, GeoipError> {
    let mut out = create(file).map_err(|e| GeoipError::io(file, e))?;
    let size = write_dat(
        &mut out,
        file,
        db,
        tree,
        data,
        &comment(&src.edition, &src.date),
    )?;
    tracing::debug!(
        file,
        nodes = tree.len(),
        data = data.len(),
        size,
        "legacy file written"
    );
    Ok(WrittenDat {
        file_name: file,
        edition: src.edition.clone(),
        date: src.date.clone(),
        networks,
        size,
        samples,
    })
}

/// Logs what was left out of a tree and why.
fn log_skips(src: &Source, family: &str, loaded: &Loaded) {
    if loaded.unmapped > 0 {
        tracing::warn!(
            edition = %src.edition,
            family,
            rows = loaded.unmapped,
            "rows skipped: no location with an answer the legacy format can hold"
        );
    }
    if loaded.overlapping > 0 {
        tracing::warn!(
            edition = %src.edition,
            family,
            rows = loaded.overlapping,
            first = loaded.first_overlap.as_deref().unwrap_or(""),
            "{} rows overlap networks listed before them (first at {}); each address takes the \
             answer of the most specific network holding it",
            loaded.overlapping,
            loaded.first_overlap.as_deref().unwrap_or("?")
        );
    }
    if loaded.shadowed > 0 {
        tracing::info!(
            edition = %src.edition,
            family,
            rows = loaded.shadowed,
            "IPv6 rows inside ::/96, ::ffff:0:0/96 or 2002::/16 answered by the IPv4 tree instead"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_prefixes_are_recognised() {
        let n = |s: &str| Network::parse(s).unwrap();
        assert!(is_linked(&n("::ffff:1.2.3.0/120")));
        assert!(is_linked(&n("::1.2.3.0/120")));
        assert!(is_linked(&n("2002:102::/32")));
        assert!(!is_linked(&n("2002::/15")));
        assert!(!is_linked(&n("2001:db8::/32")));
        assert!(!is_linked(&n("::/8")));
    }
}
