//! The `ec2` type's row in the job registry: reading its spec, checking its credentials before
//! the first run, and running it.

use super::Ec2Spec;
use crate::field::{struct_fields, FieldError};
use crate::jobs::check::{CheckContext, Finding};
use crate::jobs::kind::{BoxFuture, JobKind, JobSpec, SpecTable};
use crate::jobs::{JobType, RunContext, RunReport};

/// The `ec2` job type.
pub static KIND: JobKind = JobKind {
    name: "ec2",
    continuous: false,
    fields: struct_fields::<Ec2Spec>,
    parse,
};

fn parse(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<JobType> {
    let spec: Ec2Spec = table.read(errors)?;
    errors.extend(spec.validate(table.prefix));
    Some(JobType::Ec2(spec))
}

impl JobSpec for Ec2Spec {
    fn kind(&self) -> &'static JobKind {
        &KIND
    }

    /// The credentials a run will use.
    fn preflight(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async {
            super::preflight(self)
                .await
                .map(|source| Some(format!("credentials: OK ({source})")))
                .map_err(|e| format!("credentials: {e}"))
        })
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport> {
        Box::pin(super::run(self, ctx))
    }

    fn check(&self, ctx: &CheckContext) -> Vec<Finding> {
        super::check::check(ctx)
    }
}
