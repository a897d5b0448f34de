//! The daemon side of the control socket: accepts connections and forwards requests to the
//! scheduler loop, which owns all state.

use super::{Request, Response};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// A request from a client, with the channel the loop answers on.
pub type Envelope = (Request, oneshot::Sender<Response>);

/// Longest request accepted, in bytes.
const MAX_REQUEST: u64 = 64 * 1024;

/// Binds the socket (mode 0600, or 0660 with `group`) and serves it until the process ends;
/// refuses a socket another daemon still answers on.
pub fn serve(
    path: &Path,
    group: Option<&str>,
    to_loop: mpsc::Sender<Envelope>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket someone answers on belongs to a running daemon: never take it over.
    if let Ok(stream) = std::os::unix::net::UnixStream::connect(path) {
        let holder =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .map(|c| format!(" (pid {})", c.pid()))
                .unwrap_or_default();
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("another opsd{holder} is serving it"),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(group) = group {
        let gid = crate::account::group(group).ok_or_else(|| {
            std::io::Error::other(format!("no such group {group:?} for the control socket"))
        })?;
        nix::unistd::chown(path, None, Some(gid.gid)).map_err(std::io::Error::from)?;
    }
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, to_loop.clone()));
                }
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn handle(stream: UnixStream, to_loop: mpsc::Sender<Envelope>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let response = match reader.read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                if to_loop.send((req, tx)).await.is_err() {
                    Response::Error {
                        message: "opsd is shutting down".into(),
                    }
                } else {
                    rx.await.unwrap_or(Response::Error {
                        message: "opsd is shutting down".into(),
                    })
                }
            }
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        },
        Err(e) => Response::Error {
            message: format!("cannot read request: {e}"),
        },
    };
    if let Ok(mut bytes) = serde_json::to_vec(&response) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
    }
}
