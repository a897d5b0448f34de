//! The integration tests, one binary (ripgrep's layout): linking `opsd` and the AWS SDK once
//! instead of once per file. Each module is one area, so `cargo test --test tests daemon::`
//! runs one of them; what they share is in `util/`.
//!
//! All modules run in one process: a test must not change process-wide state another test
//! reads (the only one that does, `util::moto::aws_test_env`, sets the AWS test variables that
//! every test may see; tests that need other AWS variables give their child its own environment).

mod util;

// The benches' shared statistics, built here for their unit tests in bench_stats.rs (a
// `harness = false` bench cannot run tests): `cargo test --test tests bench_stats::`.
#[path = "../benches/util/stats.rs"]
mod stats;

mod alert_sinks;
mod apache_crash;
mod apache_doctor;
mod apache_rotation;
mod bench_stats;
mod clock;
mod daemon;
mod deb_package;
mod ec2_mock;
mod ec2_moto;
mod fleet;
mod geoip_build;
mod geoip_download;
mod import;
mod journal_priority;
mod metrics;
mod systemd_e2e;
mod tls;
mod tls_doctor;
