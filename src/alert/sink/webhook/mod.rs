//! `type = "webhook"` sinks: an HTTP(S) endpoint the alert is POSTed to as JSON, validated
//! without ever echoing the URL or a header value (the webhook's secrets); the POST itself is
//! in `post.rs`.

mod post;

use super::{timeout, Deliver, PrepareError, SinkKind, SinkSpec, SinkType};
use crate::field::{de, struct_fields, FieldError, HumanDuration};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

/// The `webhook` sink type.
pub static TYPE: SinkType = SinkType {
    name: "webhook",
    fields: struct_fields::<RawWebhook>,
    parse,
};

/// `type = "webhook"`: an HTTP(S) endpoint.
#[derive(Clone, PartialEq)]
pub struct WebhookSink {
    /// Where to POST.
    pub url: Url,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// Shows the URL by scheme and host and the headers by name only: the URL's userinfo and path
/// and the header values (`Authorization`) are the webhook's secrets.
impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebhookSink")
            .field("url", &crate::redact::parsed(&self.url))
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SinkSpec for WebhookSink {
    fn sink_type(&self) -> &'static SinkType {
        &TYPE
    }

    fn deliverer(&self) -> Result<Box<dyn Deliver>, PrepareError> {
        Ok(Box::new(post::Webhook::new(self)?))
    }
}

/// `[alerts.NAME]` with `type = "webhook"` as written.
#[derive(Debug, Deserialize)]
struct RawWebhook {
    #[serde(rename = "type")]
    _kind: String,
    url: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout: Option<HumanDuration>,
}

fn parse(
    value: &Spanned<DeValue<'_>>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Result<Option<SinkKind>, FieldError> {
    de::<RawWebhook>(value, prefix).map(|raw| webhook(raw, prefix, errors))
}

fn webhook(raw: RawWebhook, prefix: &str, errors: &mut Vec<FieldError>) -> Option<SinkKind> {
    let url = match Url::parse(raw.url.get_ref()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                format!(
                    "unsupported URL scheme {:?}; webhooks are http:// or https://",
                    u.scheme()
                ),
            ));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                "the URL has no host",
            ));
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            errors.push(FieldError::new(
                raw.url.span(),
                format!("{prefix}.url"),
                // The value is not echoed: a webhook URL holds its token, and the position
                // already points at it.
                format!("invalid URL: {e} (e.g. \"https://hooks.example.com/T000/B000/XXX\")"),
            ));
            None
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let key = format!("{prefix}.headers");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(FieldError::new(
                value.span(),
                &key,
                format!("{name:?} is not a valid HTTP header name"),
            ));
        } else if HeaderValue::from_str(value.get_ref()).is_err() {
            errors.push(FieldError::new(
                value.span(),
                &key,
                format!("the value of header {name:?} has characters HTTP does not allow"),
            ));
        } else {
            headers.push((name.clone(), value.get_ref().clone()));
        }
    }
    Some(SinkKind::Webhook(WebhookSink {
        url: url?,
        headers,
        timeout: timeout(raw.timeout),
    }))
}
