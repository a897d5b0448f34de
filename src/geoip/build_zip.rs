//! The one place that binds each GeoLite2 edition ([`EditionKind`]) to its
//! [`super::edition::Edition`] implementation, and the entry point that builds a zip with it.

use super::asn::Asn;
use super::build::{build_edition, WrittenDat};
use super::city::City;
use super::country::Country;
use super::error::GeoipError;
use super::guard::BuildGuard;
use super::source::{EditionKind, Source};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

/// Builds the legacy files of the GeoLite2 CSV zip at `zip` into the directory `out_dir`,
/// each under its own name (`GeoIP.dat`, …), reading no more than `guard` allows and stopping
/// when its flag is set. The files are flushed, not synced: durability is the caller's (the
/// installer copies and fsyncs what it installs).
pub fn build_zip(
    zip: &Path,
    guard: &BuildGuard,
    out_dir: &Path,
) -> Result<Vec<WrittenDat>, GeoipError> {
    let mut create = |name: &'static str| {
        File::create(out_dir.join(name)).map(|f| BufWriter::with_capacity(1 << 20, f))
    };
    let mut src = Source::open(zip, guard)?;
    tracing::info!(
        zip = %zip.display(),
        edition = %src.edition,
        date = %src.date,
        "building legacy GeoIP files"
    );
    match src.kind {
        EditionKind::Country => build_edition::<Country, _>(&mut src, &mut create),
        EditionKind::Asn => build_edition::<Asn, _>(&mut src, &mut create),
        EditionKind::City => build_edition::<City, _>(&mut src, &mut create),
    }
}
