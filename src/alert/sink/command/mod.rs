//! `type = "command"` sinks: a program run with the alert as JSON on its stdin; the run itself
//! (clean environment, own process group, nothing left behind) is in `run.rs`.

mod run;

use super::{timeout, Deliver, PrepareError, SinkKind, SinkSpec, SinkType};
use crate::command_line::{empty_error, CommandLine};
use crate::field::{de, struct_fields, FieldError, HumanDuration};
use crate::process::env;
use serde::Deserialize;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// The `command` sink type.
pub static TYPE: SinkType = SinkType {
    name: "command",
    fields: struct_fields::<RawCommand>,
    parse,
};

/// `type = "command"`: a program fed the alert on stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSink {
    /// The program and its arguments, or a shell line.
    pub command: CommandLine,
    /// How long one attempt may take before the program is killed.
    pub timeout: Duration,
    /// Names of the daemon's environment variables the program may see (none by default).
    pub pass_env: Vec<String>,
}

impl SinkSpec for CommandSink {
    fn sink_type(&self) -> &'static SinkType {
        &TYPE
    }

    fn program(&self) -> Option<&str> {
        self.command.program()
    }

    fn deliverer(&self) -> Result<Box<dyn Deliver>, PrepareError> {
        Ok(Box::new(self.clone()))
    }
}

/// `[alerts.NAME]` with `type = "command"` as written.
#[derive(Debug, Deserialize)]
struct RawCommand {
    #[serde(rename = "type")]
    _kind: String,
    command: Spanned<CommandLine>,
    timeout: Option<HumanDuration>,
    #[serde(default)]
    pass_env: Vec<Spanned<String>>,
}

fn parse(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<SinkKind>, FieldError> {
    de::<RawCommand>(value, prefix).map(|raw| command(raw, prefix, errors))
}

fn command(raw: RawCommand, prefix: &str, errors: &mut Vec<FieldError>) -> Option<SinkKind> {
    if let Some(e) = empty_error(
        &raw.command,
        prefix,
        "give a program and its arguments, e.g. [\"/usr/local/bin/notify-admin\"]",
    ) {
        errors.push(e);
        return None;
    }
    let pass_env = env::check_pass_env(&raw.pass_env, prefix, errors);
    Some(SinkKind::Command(CommandSink {
        command: raw.command.into_inner(),
        timeout: timeout(raw.timeout),
        pass_env,
    }))
}
