//! The doctor at job start: examine the Apache server once, off the async threads and within
//! a time limit, so that child-crash alerts can carry its verdict.

use crate::apache::doctor::{diagnose, Diagnosis, DoctorError, DoctorOptions};
use std::path::PathBuf;
use std::time::Duration;
use tracing::{info, warn};

/// How long the doctor may take at job start, all three Apache calls together.
pub const DOCTOR_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the doctor gave no diagnosis at job start.
#[derive(Debug, thiserror::Error)]
pub enum StartDoctorError {
    /// Apache could not be examined.
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    /// All the calls together took longer than [`DOCTOR_TIMEOUT`].
    #[error("the doctor did not finish within {}s", DOCTOR_TIMEOUT.as_secs())]
    Timeout,
    /// The blocking thread or its runtime could not be set up.
    #[error("cannot run the doctor: {0}")]
    Thread(String),
}

/// Runs `opsd apache doctor` on `bin` (or its default lookup) on a blocking thread with its own
/// runtime, for at most `timeout`.
pub async fn diagnose_in_background(
    bin: Option<PathBuf>,
    timeout: Duration,
) -> Result<Diagnosis, StartDoctorError> {
    let task = tokio::task::spawn_blocking(move || {
        let opts = DoctorOptions::new(bin, Vec::new())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StartDoctorError::Thread(e.to_string()))?;
        rt.block_on(async {
            tokio::time::timeout(timeout, diagnose(&opts))
                .await
                .map_err(|_| StartDoctorError::Timeout)?
                .map_err(StartDoctorError::from)
        })
    });
    task.await
        .map_err(|e| StartDoctorError::Thread(e.to_string()))?
}

/// The doctor's diagnosis for job `job`, logged; `None` (with a warning) when it cannot run.
pub(super) async fn run_doctor(job: &str, bin: Option<PathBuf>) -> Option<Diagnosis> {
    match diagnose_in_background(bin, DOCTOR_TIMEOUT).await {
        Ok(d) => {
            info!(
                job = %job,
                verdict = ?d.verdict,
                "{}: apache doctor: {}", job, d.summary()
            );
            Some(d)
        }
        Err(e) => {
            warn!(job = %job, error = %e, "{}: apache doctor could not examine the server; child-crash alerts will not carry its verdict", job);
            None
        }
    }
}
