//! The TLS probe: for one `host:port`, which of TLS 1.3, 1.2, 1.1 and 1.0 the server accepts
//! (and the cipher suite of each), its certificate chain (trusted? valid for the name? when does
//! each certificate expire?), a verdict against what the operator expects, and the table
//! `opsd run-job` prints. Mail servers are probed after their STARTTLS (SMTP, IMAP, POP3). The
//! `tls` job type is built on this; this module knows nothing of jobs, configuration or the
//! scheduler.
//!
//! Every probe is bounded in time (one timeout covers DNS, connections and reads) and in
//! memory (the hand-built hello reads 256 KiB at most, STARTTLS 100 lines of 4 KiB; rustls
//! bounds its own messages).
//!
//! [`doctor`] (`opsd tls doctor`) is built on the probe too: it reads the local nginx and
//! Apache configurations and probes each TLS listener they define.

mod certificate;
mod hello;
mod probe;
mod starttls;
mod table;
mod target;
mod trust;
mod verdict;
mod versions;

pub mod doctor;

#[cfg(test)]
pub(crate) mod tests;

/// The longest probe timeout accepted (the tls job's `probe_timeout`, the doctor's
/// `--probe-timeout`): a probe that needs more is a target that is down.
pub const MAX_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub use certificate::{examine, parse as parse_certificate, CertInfo, ChainProblem, ChainReport};
pub use probe::{probe, probe_all, Findings, ProbeReport, Unreachable};
pub use starttls::Starttls;
pub use table::{details, render, render_details};
pub use target::{Host, Target, TargetError};
pub use trust::{Trust, TrustError};
pub use verdict::{judge, Expect, Problem, ProblemKind, Verdict};
pub use versions::{Support, Version, Versions};
