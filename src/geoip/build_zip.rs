//! The one place that binds each GeoLite2 edition ([`Kind`]) to its [`super::edition::Edition`]
//! implementation, and the entry point that builds a zip with it.

use super::asn::Asn;
use super::build::{build_edition, WrittenDat};
use super::city::City;
use super::country::Country;
use super::error::GeoipError;
use super::guard::BuildGuard;
use super::source::{Kind, Source};
use std::io::Write;
use std::path::Path;

/// Builds the legacy files of the GeoLite2 CSV zip at `zip`, handing each one's bytes to the
/// writer `create` returns for its file name (`GeoIP.dat`, …), reading no more than `guard`
/// allows and stopping when its flag is set. The writer is flushed, not synced: durability is
/// the caller's.
pub fn build_zip<W: Write>(
    zip: &Path,
    guard: &BuildGuard,
    mut create: impl FnMut(&'static str) -> std::io::Result<W>,
) -> Result<Vec<WrittenDat>, GeoipError> {
    let mut src = Source::open(zip, guard)?;
    tracing::info!(
        zip = %zip.display(),
        edition = %src.edition,
        date = %src.date,
        "building legacy GeoIP files"
    );
    match src.kind {
        Kind::Country => build_edition::<Country, W>(&mut src, &mut create),
        Kind::Asn => build_edition::<Asn, W>(&mut src, &mut create),
        Kind::City => build_edition::<City, W>(&mut src, &mut create),
    }
}
