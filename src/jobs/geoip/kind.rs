//! The `geoip` type's row in the job registry: reading its spec, running it, and the paths it
//! needs.

use super::GeoipSpec;
use crate::field::{struct_fields, FieldError};
use crate::jobs::check::{CheckContext, Finding};
use crate::jobs::kind::{BoxFuture, JobKind, JobSpec, SpecTable};
use crate::jobs::needs::Needs;
use crate::jobs::{JobType, RunContext, RunReport};

/// The `geoip` job type.
pub static KIND: JobKind = JobKind {
    name: "geoip",
    continuous: false,
    fields: struct_fields::<GeoipSpec>,
    parse,
};

fn parse(table: &SpecTable<'_, '_>, errors: &mut Vec<FieldError>) -> Option<JobType> {
    let spec: GeoipSpec = table.read(errors)?;
    errors.extend(spec.validate(table.prefix));
    Some(JobType::Geoip(spec))
}

impl JobSpec for GeoipSpec {
    fn kind(&self) -> &'static JobKind {
        &KIND
    }

    fn run<'a>(&'a self, ctx: &'a RunContext) -> BoxFuture<'a, RunReport> {
        Box::pin(super::run(self, ctx))
    }

    /// The license key file, the output directory (written to) and the `after` program.
    fn needs(&self, out: &mut Needs) {
        if let Some(file) = &self.license_key_file {
            let path = file.get_ref().clone();
            out.add("license_key_file", path, None, Some(file.span()));
        }
        let dir = &self.output_dir;
        out.add_written_to("output_dir", dir.get_ref().clone(), Some(dir.span()));
        if let Some(after) = &self.after {
            if let Some(program) = after.get_ref().first() {
                out.add("after", program.into(), None, Some(after.span()));
            }
        }
    }

    fn check(&self, ctx: &CheckContext) -> Vec<Finding> {
        super::check::check(self, ctx)
    }
}
