//! The Apache error-log watch: parse Apache 2.4 error-log lines, match the built-in and custom
//! rules against them, and follow log files across rotation without losing or repeating a line.
//!
//! [`watch::Watcher`] ties it together: it follows the files ([`follow`]), remembers where it is
//! ([`checkpoint`]), and turns matching lines ([`mod@line`], [`rules`]) into [`rules::LogEvent`]s.
//! [`conf`] reads Apache's own configuration syntax, for the doctors.
//! [`doctor`] checks a server for the known child-crash recipe (`opsd apache doctor`);
//! [`test_rules`] shows what the rules would match in a given log (`opsd apache test-rules`).

pub mod checkpoint;
pub mod conf;
pub mod doctor;
pub mod follow;
pub mod line;
pub mod rules;
pub mod test_rules;
pub mod watch;
