//! One probe of one target, and many targets at once.
//!
//! Contract: [`probe`] returns by its deadline (the timeout covers DNS, every connection and
//! every read), whatever the server does: refuses, accepts and stays silent, or streams
//! garbage. The four version probes run concurrently, each on its own connection. A target that
//! cannot be reached is one typed [`Unreachable`] outcome, not four version failures.

use super::certificate::{self, ChainReport};
use super::starttls::{self, Starttls};
use super::target::{Host, Target};
use super::trust::Trust;
use super::versions::{self, Handshake, Support, Version, Versions};
use futures_util::stream::{self, StreamExt};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// Why a target could not be probed at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unreachable {
    /// The host name did not resolve.
    #[error("DNS: {0}")]
    Dns(String),
    /// Nothing listens on the port.
    #[error("connection refused")]
    Refused,
    /// No connection, or no answer on it, within the timeout.
    #[error("timeout: no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The connection failed otherwise (no route, network unreachable, ...).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The plaintext start failed on every connection: the server does not offer STARTTLS,
    /// refuses it, or speaks another protocol.
    #[error("STARTTLS ({protocol}): {reason}")]
    Starttls {
        /// The protocol spoken.
        protocol: Starttls,
        /// What went wrong.
        reason: String,
    },
}

/// What a reachable server showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Which versions it accepts.
    pub versions: Versions,
    /// Its certificate chain, from the handshake of the newest version it accepts (for TLS 1.1
    /// and 1.0, and TLS 1.2 with suites rustls refuses, the hand-built hello's); `Err` says why
    /// there is none.
    pub chain: Result<ChainReport, String>,
}

/// Everything one probe learnt about one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The target probed.
    pub target: Target,
    /// The address connected to, once resolved.
    pub address: Option<SocketAddr>,
    /// What the server showed, or why it could not be asked.
    pub result: Result<Findings, Unreachable>,
    /// How long the probe took.
    pub elapsed: Duration,
}

/// How one version probe ended.
#[derive(Debug)]
enum Attempt {
    /// Connected and learnt whether the version is accepted, with the handshake when it is
    /// (`Err`: accepted by a hand-built hello, but its certificate could not be read).
    Answered(Support, Option<Result<Handshake, String>>),
    /// The connection was refused.
    Refused,
    /// The connection failed otherwise.
    ConnectFailed(String),
    /// The plaintext start before TLS failed.
    Starttls(String),
    /// The deadline passed (connecting or waiting for the answer).
    TimedOut,
}

/// Probes `target`: versions, certificate chain against `trust`; done within `timeout`.
pub async fn probe(target: &Target, timeout: Duration, trust: &Trust) -> ProbeReport {
    let started = Instant::now();
    let deadline = started + timeout;
    let report = |address, result| ProbeReport {
        target: target.clone(),
        address,
        result,
        elapsed: started.elapsed(),
    };
    let addresses = match timeout_at(deadline, resolve(target)).await {
        Err(_) => return report(None, Err(Unreachable::Timeout(timeout))),
        Ok(Err(e)) => return report(None, Err(Unreachable::Dns(e))),
        Ok(Ok(addresses)) => addresses,
    };
    let Some((first, others)) = addresses.split_first() else {
        return report(None, Err(Unreachable::Dns("no address".to_string())));
    };
    let address = match timeout_at(deadline, pick(*first, others)).await {
        Err(_) => return report(Some(*first), Err(Unreachable::Timeout(timeout))),
        Ok(Err((address, unreachable))) => return report(Some(address), Err(unreachable)),
        Ok(Ok(address)) => address,
    };
    let (tls13, tls12, tls11, tls10) = tokio::join!(
        attempt(address, target, Version::Tls13, deadline),
        attempt(address, target, Version::Tls12, deadline),
        attempt(address, target, Version::Tls11, deadline),
        attempt(address, target, Version::Tls10, deadline),
    );
    let attempts = [&tls13, &tls12, &tls11, &tls10];
    if attempts.iter().all(|a| matches!(a, Attempt::Refused)) {
        return report(Some(address), Err(Unreachable::Refused));
    }
    if attempts.iter().all(|a| matches!(a, Attempt::TimedOut)) {
        return report(Some(address), Err(Unreachable::Timeout(timeout)));
    }
    if let (Attempt::Starttls(why), Some(protocol)) = (&tls13, target.starttls()) {
        if attempts.iter().all(|a| matches!(a, Attempt::Starttls(_))) {
            let reason = why.clone();
            return report(
                Some(address),
                Err(Unreachable::Starttls { protocol, reason }),
            );
        }
    }
    if let Attempt::ConnectFailed(why) = &tls13 {
        if attempts
            .iter()
            .all(|a| matches!(a, Attempt::ConnectFailed(_)))
        {
            return report(Some(address), Err(Unreachable::Connect(why.clone())));
        }
    }
    let (tls13, shake13) = support(tls13, timeout);
    let (tls12, shake12) = support(tls12, timeout);
    let (tls11, shake11) = support(tls11, timeout);
    let (tls10, shake10) = support(tls10, timeout);
    let shakes = [
        (Version::Tls13, shake13),
        (Version::Tls12, shake12),
        (Version::Tls11, shake11),
        (Version::Tls10, shake10),
    ];
    let chain = newest_chain(shakes).map(|shake| {
        certificate::examine(
            &shake.chain,
            target.server_name(),
            shake.ocsp_stapled,
            trust,
            chrono::Utc::now(),
        )
    });
    let versions = Versions {
        tls13,
        tls12,
        tls11,
        tls10,
    };
    report(Some(address), Ok(Findings { versions, chain }))
}

/// The chain of the newest version that has one (a TLS 1.0-only server's comes from its
/// hand-built hello); `Err` says why there is none.
fn newest_chain(
    shakes: [(Version, Option<Result<Handshake, String>>); 4],
) -> Result<Handshake, String> {
    let mut why = None;
    for (version, shake) in shakes {
        match shake {
            Some(Ok(shake)) => return Ok(shake),
            Some(Err(e)) => {
                why.get_or_insert_with(|| format!("{version}: {e}"));
            }
            None => {}
        }
    }
    Err(why.unwrap_or_else(|| "no handshake finished".to_string()))
}

/// Probes every target, at most `concurrency` at once; reports in the order of `targets`.
/// The returned future is `Send` (a job's run needs it to be).
pub async fn probe_all(
    targets: &[Target],
    timeout: Duration,
    trust: &Trust,
    concurrency: usize,
) -> Vec<ProbeReport> {
    // The stream is of indices, each probe made as the stream is polled: with a stream of
    // `&Target`, the closure is generic over the target's lifetime, and rustc then cannot
    // prove the whole future `Send` ("FnOnce is not general enough") where a job's run needs
    // it (rust-lang/rust#64552).
    stream::iter(0..targets.len())
        .map(|n| probe(&targets[n], timeout, trust))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// The target's addresses (no DNS for an IP address); never empty.
async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, String> {
    match target.host() {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port())]),
        Host::Name(name) => {
            let name: &str = name.as_ref();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, target.port()))
                .await
                .map_err(|e| e.to_string())?
                .collect();
            if addresses.is_empty() {
                return Err(format!("{name} has no address"));
            }
            Ok(addresses)
        }
    }
}

/// The address to probe: `first` when it is the only one, or else the first of `first` and
/// `others` that takes a TCP connection (a name whose IPv6 address nobody listens on is probed
/// on its IPv4 one, as browsers do). `Err` says why `first` failed.
pub(super) async fn pick(
    first: SocketAddr,
    others: &[SocketAddr],
) -> Result<SocketAddr, (SocketAddr, Unreachable)> {
    if others.is_empty() {
        return Ok(first);
    }
    let failure = match connect(first).await {
        Ok(_) => return Ok(first),
        Err(Attempt::ConnectFailed(why)) => Unreachable::Connect(why),
        Err(_) => Unreachable::Refused,
    };
    for address in others {
        if connect(*address).await.is_ok() {
            return Ok(*address);
        }
    }
    Err((first, failure))
}

/// Connects to `address`, classifying a failure.
async fn connect(address: SocketAddr) -> Result<TcpStream, Attempt> {
    TcpStream::connect(address)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => Attempt::Refused,
            _ => Attempt::ConnectFailed(e.to_string()),
        })
}

/// A connection to `address` ready for a ClientHello: after the target's STARTTLS, if any.
async fn open(address: SocketAddr, target: &Target) -> Result<TcpStream, Attempt> {
    let mut stream = connect(address).await?;
    if let Some(protocol) = target.starttls() {
        starttls::upgrade(&mut stream, protocol)
            .await
            .map_err(Attempt::Starttls)?;
    }
    Ok(stream)
}

/// One version probe on its own connection, ended at `deadline`.
async fn attempt(
    address: SocketAddr,
    target: &Target,
    version: Version,
    deadline: Instant,
) -> Attempt {
    let work = async {
        let stream = match open(address, target).await {
            Ok(stream) => stream,
            Err(failed) => return failed,
        };
        match version {
            Version::Tls13 | Version::Tls12 => {
                match versions::handshake(stream, target.server_name().clone(), version).await {
                    Ok(Ok(shake)) => Attempt::Answered(
                        Support::Accepted {
                            cipher: shake.cipher.clone(),
                        },
                        Some(Ok(shake)),
                    ),
                    Ok(Err(reason)) => {
                        let refused = Support::Rejected { reason };
                        let (support, shake) =
                            tls12_by_hand(address, target, version, refused, deadline).await;
                        Attempt::Answered(support, shake)
                    }
                    Err(reason) => {
                        let failed = Support::Unknown { reason };
                        let (support, shake) =
                            tls12_by_hand(address, target, version, failed, deadline).await;
                        Attempt::Answered(support, shake)
                    }
                }
            }
            Version::Tls11 | Version::Tls10 => {
                match versions::hello(stream, target.sni_name(), version, deadline).await {
                    Ok((support, shake)) => Attempt::Answered(support, shake),
                    Err(reason) => Attempt::Answered(Support::Unknown { reason }, None),
                }
            }
        }
    };
    timeout_at(deadline, work)
        .await
        .unwrap_or(Attempt::TimedOut)
}

/// After rustls's TLS 1.2 offer failed (`failed`): asks again with a hand-built hello offering
/// the older TLS 1.2 cipher suites too; `failed` stands unless that one is accepted. TLS 1.3
/// has no such older suites: `failed` stands. The certificate comes from that hello.
async fn tls12_by_hand(
    address: SocketAddr,
    target: &Target,
    version: Version,
    failed: Support,
    deadline: Instant,
) -> (Support, Option<Result<Handshake, String>>) {
    if version != Version::Tls12 {
        return (failed, None);
    }
    let Ok(stream) = open(address, target).await else {
        return (failed, None);
    };
    match versions::hello(stream, target.sni_name(), Version::Tls12, deadline).await {
        // rustls may have failed for another reason than the suite (a huge chain).
        Ok((Support::Accepted { cipher }, shake)) if versions::rustls_speaks(&cipher) => {
            (Support::Accepted { cipher }, shake)
        }
        Ok((Support::Accepted { cipher }, shake)) => (
            Support::Accepted {
                cipher: format!("{cipher} (not spoken by rustls)"),
            },
            shake,
        ),
        _ => (failed, None),
    }
}

/// The version's support from an attempt (not all attempts failed alike, so each one that did
/// is unknown), and its handshake.
fn support(attempt: Attempt, timeout: Duration) -> (Support, Option<Result<Handshake, String>>) {
    match attempt {
        Attempt::Answered(support, shake) => (support, shake),
        Attempt::Refused => (
            Support::Unknown {
                reason: Unreachable::Refused.to_string(),
            },
            None,
        ),
        Attempt::ConnectFailed(why) => (
            Support::Unknown {
                reason: Unreachable::Connect(why).to_string(),
            },
            None,
        ),
        Attempt::Starttls(why) => (
            Support::Unknown {
                reason: format!("STARTTLS: {why}"),
            },
            None,
        ),
        Attempt::TimedOut => (
            Support::Unknown {
                reason: Unreachable::Timeout(timeout).to_string(),
            },
            None,
        ),
    }
}
