//! The `tls` type's row in the job registry: reading its spec, loading its `ca_file` before the
//! first run, running it, and the path it needs.

use super::spec::{self, RawTlsSpec};
use super::TlsSpec;
use crate::field::{struct_fields, FieldError};
use crate::jobs::kind::{BoxFuture, JobKind, JobSpec, SpecTable};
use crate::jobs::needs::Needs;
use crate::jobs::{JobType, RunContext, RunReport};
use crate::tls::Trust;

/// The `tls` job type.
pub static KIND: JobKind = JobKind {
    name: "tls",
    continuous: false,
    fields: struct_fields::<RawTlsSpec>,
    parse,
};

fn parse(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<JobType> {
    spec::read(table, errors).map(JobType::Tls)
}

impl JobSpec for TlsSpec {
    fn kind(&self) -> &'static JobKind {
        &KIND
    }

    /// The `ca_file`, which must hold at least one certificate.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async {
            let Some((path, _)) = &self.ca_file else {
                return Ok(None);
            };
            let path = path.clone();
            let shown = crate::escape::control(&path.display().to_string()).into_owned();
            match tokio::task::spawn_blocking(move || Trust::only_ca_file(&path)).await {
                Ok(Ok(trust)) => {
                    let n = trust.roots().len();
                    let noun = if n == 1 {
                        "certificate"
                    } else {
                        "certificates"
                    };
                    Ok(Some(format!("ca_file {shown}: OK ({n} {noun})")))
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("ca_file {shown}: {e}")),
            }
        })
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport> {
        Box::pin(super::run(self, ctx))
    }

    /// The `ca_file`.
    fn needs(&self, out: &mut Needs) {
        if let Some((path, span)) = &self.ca_file {
            out.add("ca_file", path.clone(), None, Some(span.clone()));
        }
    }
}
