//! Unit tests of the benches' shared statistics (benches/util/stats.rs, built into this binary
//! by tests/tests.rs): percentiles by nearest rank, NaN ordering and the min / median / max.

use crate::stats::{percentile, sorted, spread, Spread};
use std::time::Duration;

#[test]
fn percentile_is_the_nearest_rank() {
    let v: Vec<i64> = (1..=100).collect();
    assert_eq!(percentile(&v, 0.5), Some(50));
    assert_eq!(percentile(&v, 0.99), Some(99));
    assert_eq!(percentile(&v, 0.991), Some(100));
    assert_eq!(percentile(&v, 1.0), Some(100));
    assert_eq!(percentile(&v, 0.0), Some(1));
    // Of 4 samples, p50 is the 2nd (lower median) and p99 the 4th.
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
    assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), Some(4.0));
}

#[test]
fn percentile_of_one_sample_or_none() {
    assert_eq!(percentile(&[7u64], 0.0), Some(7));
    assert_eq!(percentile(&[7u64], 0.99), Some(7));
    assert_eq!(percentile::<u64>(&[], 0.5), None);
    // Out of range p is clamped, not an index out of bounds.
    assert_eq!(percentile(&[1, 2, 3], 1.5), Some(3));
    assert_eq!(percentile(&[1, 2, 3], -1.0), Some(1));
}

#[test]
fn sorted_puts_nan_last() {
    let v = sorted(vec![3.0, f64::NAN, 1.0, 2.0]);
    assert_eq!(&v[..3], &[1.0, 2.0, 3.0]);
    assert!(v[3].is_nan());
    assert_eq!(percentile(&v, 0.75), Some(3.0));
}

#[test]
fn spread_of_unsorted_samples() {
    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        spread(vec![ms(5), ms(1), ms(9), ms(3), ms(7)]),
        Some(Spread {
            min: ms(1),
            median: ms(5),
            max: ms(9)
        })
    );
    assert_eq!(
        spread(vec![2.5]),
        Some(Spread {
            min: 2.5,
            median: 2.5,
            max: 2.5
        })
    );
    // An even count: the upper of the two middle samples.
    assert_eq!(spread(vec![4, 1, 3, 2]).map(|s| s.median), Some(3));
    assert_eq!(spread(Vec::<f64>::new()), None);
}
