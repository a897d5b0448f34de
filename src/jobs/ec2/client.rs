//! Building the EC2 client from a job: the standard credential chain (environment, shared
//! config profile, web identity, container, instance profile), the job's region and endpoint,
//! and explicit, bounded retry and timeout policies. Also the credentials preflight.

use super::errors::{chain, Ec2Error, Target};
use super::spec::Ec2Spec;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sdk_ec2::Client;
use std::time::Duration;

/// Attempts per call (the first try included) before an error such as throttling is final.
pub const MAX_ATTEMPTS: u32 = 5;
/// Longest time the whole credential chain may take (instance metadata included).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);

/// The retry policy: standard mode (exponential backoff with jitter, a retry token bucket),
/// at most [`MAX_ATTEMPTS`] attempts, backoff from 1 s up to 20 s.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_secs(1))
        .with_max_backoff(Duration::from_secs(20))
}

/// The timeouts: connecting, each attempt, and each call with its retries.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(120))
        .build()
}

/// Where a job's calls go.
pub fn target(spec: &Ec2Spec) -> Target {
    Target {
        region: spec.region.get_ref().clone(),
        endpoint_url: spec.endpoint_url.as_ref().map(|e| e.get_ref().clone()),
    }
}

/// Loads the AWS configuration for a job (no network call is made here).
pub async fn sdk_config(spec: &Ec2Spec) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(spec.region.get_ref().clone()))
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(profile) = &spec.profile {
        loader = loader.profile_name(profile.get_ref());
    }
    if let Some(url) = &spec.endpoint_url {
        loader = loader.endpoint_url(url.get_ref());
    }
    loader.load().await
}

/// Resolves credentials through the chain; the text says where they came from.
pub async fn resolve_credentials(spec: &Ec2Spec, config: &SdkConfig) -> Result<String, Ec2Error> {
    let Some(provider) = config.credentials_provider() else {
        return Err(no_credentials(spec, String::new()));
    };
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(creds)) => Ok(source(spec, &creds)),
        Ok(Err(e)) => Err(credentials_error(spec, &e)),
        Err(_) => Err(no_credentials(
            spec,
            format!(
                "; the chain did not answer within {}s",
                CREDENTIALS_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Builds a client for a job after checking that credentials resolve.
pub async fn connect(spec: &Ec2Spec) -> Result<(Client, String), Ec2Error> {
    let config = sdk_config(spec).await;
    let source = resolve_credentials(spec, &config).await?;
    Ok((Client::new(&config), source))
}

/// Checks that a job's credentials resolve, without calling EC2; says where they came from.
pub async fn preflight(spec: &Ec2Spec) -> Result<String, Ec2Error> {
    let config = sdk_config(spec).await;
    resolve_credentials(spec, &config).await
}

/// The profile the chain reads: the job's, else `AWS_PROFILE`, else `default`.
fn profile_name(spec: &Ec2Spec) -> String {
    spec.profile
        .as_ref()
        .map(|p| p.get_ref().clone())
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "default".to_string())
}

/// Describes where resolved credentials came from, from the features the provider recorded.
fn source(spec: &Ec2Spec, creds: &Credentials) -> String {
    let features = creds
        .get_property::<Vec<AwsCredentialFeature>>()
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for f in features {
        let name = match f {
            AwsCredentialFeature::CredentialsEnvVars => {
                "environment (AWS_ACCESS_KEY_ID)".to_string()
            }
            AwsCredentialFeature::CredentialsProfile => {
                format!("shared config profile {:?}", profile_name(spec))
            }
            AwsCredentialFeature::CredentialsStsAssumeRole => "assumed role".to_string(),
            AwsCredentialFeature::CredentialsProfileStsWebIdToken
            | AwsCredentialFeature::CredentialsEnvVarsStsWebIdToken
            | AwsCredentialFeature::CredentialsStsAssumeRoleWebId => {
                "web identity token".to_string()
            }
            AwsCredentialFeature::CredentialsHttp => "container credentials endpoint".to_string(),
            AwsCredentialFeature::CredentialsImds => {
                "instance profile (instance metadata)".to_string()
            }
            AwsCredentialFeature::CredentialsProcess
            | AwsCredentialFeature::CredentialsProfileProcess => {
                format!("credential_process of profile {:?}", profile_name(spec))
            }
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        "the AWS credential chain".to_string()
    } else {
        names.join(" via ")
    }
}

/// The sources the default chain tries, in order, as they apply on this machine.
fn tried(spec: &Ec2Spec) -> String {
    let env_path = |var: &str, default: &str| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let imds = if std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    {
        "instance profile (skipped: AWS_EC2_METADATA_DISABLED=true)"
    } else {
        "instance profile (instance metadata service)"
    };
    format!(
        "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), profile {:?} in {} and {}, \
         web identity (AWS_WEB_IDENTITY_TOKEN_FILE), container credentials \
         (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI), {imds}",
        profile_name(spec),
        env_path("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        env_path("AWS_CONFIG_FILE", "~/.aws/config"),
    )
}

/// The error for an empty chain.
fn no_credentials(spec: &Ec2Spec, detail: String) -> Ec2Error {
    Ec2Error::NoCredentials {
        tried: tried(spec),
        detail,
    }
}

/// Turns a credential chain error into an actionable one.
fn credentials_error(spec: &Ec2Spec, e: &CredentialsError) -> Ec2Error {
    let detail = match e {
        CredentialsError::CredentialsNotLoaded(_) => String::new(),
        // Display of each cause: DisplayErrorContext ends with a Debug dump of the error.
        other => format!("; {}", chain(other)),
    };
    no_credentials(spec, detail)
}
