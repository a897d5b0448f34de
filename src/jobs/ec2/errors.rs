//! What can go wrong talking to EC2, each said in words an operator can act on: which
//! credential sources were tried, which IAM action is missing, which region or endpoint failed.
//!
//! Invariant: no error shows `endpoint_url` beyond scheme, host and port ([`crate::redact::url`]),
//! and all text an endpoint sent (codes, messages, bodies) is escaped
//! ([`crate::escape::control`]) and cut, so an answer cannot forge or flood a log line.

use crate::{escape, redact};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::fmt;

/// Most characters of an endpoint's answer quoted in an error.
const BODY_SHOWN: usize = 160;

/// The EC2 API calls opsd makes, for naming the IAM action an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// DescribeInstances (selection and waiting).
    Describe,
    /// StartInstances.
    Start,
    /// StopInstances (also hibernate).
    Stop,
}

impl Call {
    /// The IAM action the call needs.
    pub fn iam_action(self) -> &'static str {
        match self {
            Call::Describe => "ec2:DescribeInstances",
            Call::Start => "ec2:StartInstances",
            Call::Stop => "ec2:StopInstances",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iam_action().trim_start_matches("ec2:"))
    }
}

/// Where the calls go, for messages about unreachable endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The configured region.
    pub region: String,
    /// The configured endpoint override, if any.
    pub endpoint_url: Option<String>,
}

impl Target {
    /// `text` with every secret part of `endpoint_url` (userinfo, path, query) replaced, for
    /// error texts of lower layers that may quote the URL they were given.
    pub fn scrub(&self, text: &str) -> String {
        let Some(raw) = &self.endpoint_url else {
            return text.to_string();
        };
        let mut out = text.replace(raw.as_str(), &redact::url(raw));
        if let Ok(u) = url::Url::parse(raw) {
            let secrets = [
                u.password().unwrap_or_default(),
                u.username(),
                u.query().unwrap_or_default(),
                u.path().trim_matches('/'),
            ];
            for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
                out = out.replace(secret, "…");
            }
        }
        out
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint_url {
            Some(url) => write!(f, "endpoint {} (region {})", redact::url(url), self.region),
            None => write!(f, "the EC2 endpoint of region {}", self.region),
        }
    }
}

/// An EC2 job error with the advice that goes with it.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// No credential source in the chain produced credentials.
    #[error("no AWS credentials found; tried {tried}{detail}")]
    NoCredentials {
        /// The sources that were tried, in order.
        tried: String,
        /// What the chain reported, prefixed with "; " when present.
        detail: String,
    },
    /// The credentials lack a permission.
    #[error(
        "not authorized to call {call}: grant the IAM action `{action}` to these credentials ({message})",
        action = call.iam_action()
    )]
    Unauthorized {
        /// The call that was refused.
        call: Call,
        /// EC2's message (may be encoded).
        message: String,
    },
    /// AWS rejected the credentials themselves.
    #[error("AWS rejected the credentials for {call} ({code}: {message}); check the access key, its session token and that region {region} is enabled for the account")]
    BadCredentials {
        /// The call that was refused.
        call: Call,
        /// EC2's error code.
        code: String,
        /// EC2's message.
        message: String,
        /// The configured region.
        region: String,
    },
    /// An instance id that EC2 does not know in this region.
    #[error("instance {id} does not exist in region {region} (check `instance_ids` and `region`)")]
    NotFound {
        /// The missing id.
        id: String,
        /// The region searched.
        region: String,
    },
    /// The instance is in a state the call cannot be made from.
    #[error("{call} refused: the instance is not in a state that allows it ({message})")]
    IncorrectState {
        /// The call that was refused.
        call: Call,
        /// EC2's message.
        message: String,
    },
    /// The instance is not set up for hibernation.
    #[error("the instance cannot hibernate ({message}); enable hibernation at launch or use action = \"stop\"")]
    HibernationUnsupported {
        /// EC2's message.
        message: String,
    },
    /// Still throttled after every retry the retry policy allows.
    #[error("{call} was throttled by AWS ({code}) after {attempts} attempts with backoff; try again later or spread the jobs' schedules")]
    Throttled {
        /// The throttled call.
        call: Call,
        /// EC2's error code.
        code: String,
        /// How many attempts the retry policy allows.
        attempts: u32,
    },
    /// The endpoint could not be reached (wrong region, DNS, network, proxy).
    #[error("cannot reach {target} for {call}: {detail}; check `region`, `endpoint_url` and the network")]
    Unreachable {
        /// The call.
        call: Call,
        /// Where it went.
        target: Target,
        /// The connector's error.
        detail: String,
    },
    /// `wait = true` ran out of time.
    #[error("gave up waiting after {waited} for the instance to be {want} (raise `wait_timeout`)")]
    WaitTimeout {
        /// The state waited for.
        want: &'static str,
        /// How long it waited, human-readable.
        waited: String,
    },
    /// The instance reached a state from which the target cannot be reached.
    #[error("the instance went to {state} while waiting for {want}")]
    WaitFailed {
        /// The state waited for.
        want: &'static str,
        /// The state found.
        state: String,
    },
    /// An answer that is not EC2's: a proxy's or a web server's page, or a bare gateway error.
    #[error("{call} failed: {target} answered HTTP {status} without an EC2 error code; body starts: {body}; check `endpoint_url`, `region` and any proxy (HTTPS_PROXY) in between")]
    NotEc2 {
        /// The call.
        call: Call,
        /// Where it went.
        target: Target,
        /// The HTTP status of the answer.
        status: u16,
        /// The start of the answer's body, escaped, quoted and cut.
        body: String,
    },
    /// A DryRun call was answered as if it had acted: the endpoint ignores DryRun.
    #[error("{call} with DryRun=true was answered as a real call: {target} does not honour DryRun, so the instance may really have changed; the dry run stopped here")]
    DryRunIgnored {
        /// The call.
        call: Call,
        /// Where it went.
        target: Target,
    },
    /// EC2 accepted a call but its answer does not list the instance.
    #[error("{call} was accepted but its answer does not list the instance, so its state is unknown; check it")]
    NotInAnswer {
        /// The call.
        call: Call,
    },
    /// Any other API error, with its code.
    #[error("{call} failed: {code}: {message}")]
    Api {
        /// The call.
        call: Call,
        /// EC2's error code.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// An error below the API (building the request, reading the response).
    #[error("{call} failed: {detail}")]
    Other {
        /// The call.
        call: Call,
        /// The error with its sources.
        detail: String,
    },
}

/// Codes EC2 (and the SDK's retry classifier) uses for throttling.
const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

/// The error for an HTTP answer that carries no EC2 error code.
fn not_ec2(call: Call, target: &Target, answer: &HttpResponse) -> Ec2Error {
    Ec2Error::NotEc2 {
        call,
        target: target.clone(),
        status: answer.status().as_u16(),
        body: body_start(answer.body().bytes().unwrap_or_default()),
    }
}

/// `body` with whitespace runs as one space, cut to [`BODY_SHOWN`] characters and an ellipsis,
/// escaped and quoted; `(empty)` for no body.
fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut words = text.split_whitespace();
    let mut shown = String::new();
    if let Some(first) = words.next() {
        shown.push_str(first);
    }
    // Words past what is shown are not joined: a huge body costs no more than a short one.
    for w in words {
        if shown.chars().count() > BODY_SHOWN + 1 {
            break;
        }
        shown.push(' ');
        shown.push_str(w);
    }
    if shown.is_empty() {
        return "(empty)".to_string();
    }
    format!(
        "\"{}\"",
        escape::control(&escape::cut(&shown, BODY_SHOWN + 1, escape::Cut::End))
    )
}

/// An error and its sources as one line, `outer: inner: root`, without repeats.
pub(super) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

impl Ec2Error {
    /// Turns an SDK error from `call` into an actionable error.
    pub fn from_sdk<E>(call: Call, target: &Target, attempts: u32, err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = escape::control(err.code().unwrap_or_default()).into_owned();
        let message =
            escape::control(&target.scrub(err.message().unwrap_or_default())).into_owned();
        let context =
            || escape::control(&target.scrub(&DisplayErrorContext(&err).to_string())).into_owned();
        if code.is_empty() {
            if let Some(answer) = err.raw_response() {
                return not_ec2(call, target, answer);
            }
        }
        match &err {
            SdkError::DispatchFailure(d) if !d.is_user() => {
                let detail = d.as_connector_error().map_or_else(context, |c| {
                    escape::control(&target.scrub(&chain(c))).into_owned()
                });
                return Ec2Error::Unreachable {
                    call,
                    target: target.clone(),
                    detail,
                };
            }
            SdkError::TimeoutError(_) => {
                return Ec2Error::Unreachable {
                    call,
                    target: target.clone(),
                    detail: "timed out".to_string(),
                };
            }
            SdkError::ServiceError(_) => {}
            _ if code.is_empty() => {
                return Ec2Error::Other {
                    call,
                    detail: context(),
                };
            }
            _ => {}
        }
        Self::from_code(call, target, attempts, code, message)
    }

    /// Classifies an EC2 error code.
    fn from_code(
        call: Call,
        target: &Target,
        attempts: u32,
        code: String,
        message: String,
    ) -> Self {
        match code.as_str() {
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                Ec2Error::Unauthorized { call, message }
            }
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "OptInRequired"
            | "ExpiredToken"
            | "RequestExpired" => Ec2Error::BadCredentials {
                call,
                code,
                message,
                region: target.region.clone(),
            },
            "IncorrectInstanceState" | "IncorrectState" => {
                Ec2Error::IncorrectState { call, message }
            }
            "UnsupportedHibernationConfiguration" => Ec2Error::HibernationUnsupported { message },
            c if THROTTLING_CODES.contains(&c) => Ec2Error::Throttled {
                call,
                code,
                attempts,
            },
            _ => Ec2Error::Api {
                call,
                code,
                message,
            },
        }
    }

    /// The short kind of error for the `error_kind` log field.
    pub fn kind(&self) -> &'static str {
        match self {
            Ec2Error::NoCredentials { .. } => "no_credentials",
            Ec2Error::Unauthorized { .. } => "unauthorized",
            Ec2Error::BadCredentials { .. } => "bad_credentials",
            Ec2Error::NotFound { .. } => "not_found",
            Ec2Error::IncorrectState { .. } => "incorrect_state",
            Ec2Error::HibernationUnsupported { .. } => "hibernation_unsupported",
            Ec2Error::Throttled { .. } => "throttled",
            Ec2Error::Unreachable { .. } => "unreachable",
            Ec2Error::WaitTimeout { .. } => "wait_timeout",
            Ec2Error::WaitFailed { .. } => "wait_failed",
            Ec2Error::NotEc2 { .. } => "not_ec2",
            Ec2Error::DryRunIgnored { .. } => "dry_run_ignored",
            Ec2Error::NotInAnswer { .. } => "not_in_answer",
            Ec2Error::Api { .. } => "api",
            Ec2Error::Other { .. } => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_body_is_quoted_on_one_line_and_cut_to_its_limit() {
        assert_eq!(body_start(b""), "(empty)");
        assert_eq!(
            body_start(b"<html>\n  <b>Bad\tGateway</b>"),
            "\"<html> <b>Bad Gateway</b>\""
        );
        let words = "word ".repeat(100_000);
        let shown = body_start(words.as_bytes());
        assert_eq!(shown.chars().count(), BODY_SHOWN + 3, "{shown}");
        assert!(shown.ends_with("word …\""), "{shown}");
        let one = "x".repeat(BODY_SHOWN);
        assert_eq!(body_start(one.as_bytes()), format!("\"{one}\""));
        assert_eq!(body_start(b"a\x1b[2Kb"), "\"a\\u{1b}[2Kb\"");
    }
}
