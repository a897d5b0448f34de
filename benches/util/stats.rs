//! The benches' statistics, one copy for all of them: a percentile by nearest rank and the
//! min / median / max spread of a set of samples (the definitions the benches' figures in the
//! README were printed with). A leaf (std only): a bench includes it with
//! `#[path = "util/stats.rs"] mod stats;`, and the integration test binary builds it too, for
//! its unit tests in tests/bench_stats.rs (a `harness = false` bench cannot run tests, and
//! `cargo test --bench` builds a `#[cfg(test)]` module without its tests).

/// `values` in ascending order, NaNs last, ready for [`percentile`].
pub fn sorted<T: PartialOrd>(mut values: Vec<T>) -> Vec<T> {
    values.sort_by(|a, b| match a.partial_cmp(b) {
        Some(order) => order,
        // Only a NaN compares as nothing; it goes after every number.
        None if a.partial_cmp(a).is_none() => std::cmp::Ordering::Greater,
        None => std::cmp::Ordering::Less,
    });
    values
}

/// The `p` percentile (0 ≤ p ≤ 1) of `sorted` (ascending) by nearest rank: the smallest
/// sample with at least a fraction `p` of the samples at or below it, so p = 0.5 is the
/// (lower) median and p = 1 the maximum; `None` when there are no samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = (sorted.len() as f64 * p.clamp(0.0, 1.0)).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// The least, middle and greatest of a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread<T> {
    /// The least sample.
    pub min: T,
    /// The median: the middle sample, the upper of the two middle ones for an even count
    /// (`sorted[len / 2]`; [`percentile`] 0.5 is the lower one).
    pub median: T,
    /// The greatest sample.
    pub max: T,
}

/// The spread of `values`, in any order; `None` when there are none.
pub fn spread<T: PartialOrd + Copy>(values: Vec<T>) -> Option<Spread<T>> {
    let values = sorted(values);
    Some(Spread {
        min: *values.first()?,
        median: *values.get(values.len() / 2)?,
        max: *values.last()?,
    })
}
