//! opsd: a second-precision ops scheduler daemon. The binary is a thin shell over this library
//! so tests can drive every part: configuration → schedule → scheduler → job → outcome.

pub mod alert;
pub mod apache;
pub mod atomic_file;
pub mod bounded_read;
pub mod cli;
pub mod command_line;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dist_assets;
pub mod escape;
pub mod field;
pub mod geoip;
pub mod jobs;
pub mod logging;
pub mod process;
pub mod redact;
pub mod schedule;
pub mod scheduler;
pub mod state;
pub mod systemd;
pub mod tls;
