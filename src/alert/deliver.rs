//! One configured sink ready to deliver, whatever its type: its name and the delivery its type
//! prepared ([`crate::alert::sink::SinkKind::deliverer`]), asked for one attempt at a time.

use super::record::Alert;
use super::sink::{AttemptError, Deliver, PrepareError, SinkConfig};

/// A sink ready to deliver.
#[derive(Debug)]
pub(super) struct Sink {
    /// The sink's name in `[alerts.NAME]`.
    pub name: String,
    /// Its type's delivery.
    deliver: Box<dyn Deliver>,
}

impl Sink {
    /// Prepares a sink from its configuration (e.g. builds the HTTP client once).
    pub fn new(cfg: &SinkConfig) -> Result<Sink, PrepareError> {
        Ok(Sink {
            name: cfg.name.clone(),
            deliver: cfg.kind.deliverer()?,
        })
    }

    /// Makes one attempt to deliver `alert`.
    pub async fn attempt(&self, alert: &Alert) -> Result<(), AttemptError> {
        self.deliver.attempt(alert).await
    }
}
