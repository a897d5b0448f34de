//! `opsd check` for a `geoip` job: its [`preflight`](super::preflight) (license key and output
//! directory) as findings; a disabled job's problems are warnings.

use super::preflight::preflight;
use super::GeoipSpec;
use crate::jobs::check::{CheckContext, Finding, Place, Section, Verdict, DISABLED};

/// What check can tell about the license key and output directory of `spec`.
pub fn check(spec: &GeoipSpec, ctx: &CheckContext) -> Vec<Finding> {
    preflight(spec, ctx.credentials_dir)
        .into_iter()
        .map(|f| {
            let (verdict, suffix) = match f.level {
                Verdict::Error | Verdict::Warning if !ctx.enabled => (Verdict::Warning, DISABLED),
                level => (level, ""),
            };
            Finding {
                verdict,
                section: Section::Prerequisites,
                key: f.key,
                place: f.span.map_or(Place::Job, Place::Span),
                message: f.message + suffix,
            }
        })
        .collect()
}
