//! The client side of the control socket, used by `opsd status`, `trigger` and `reload`.

use super::{Request, Response};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Sends one request to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => bail!(
            "opsd is not running (nothing listens on {}); start it with `systemctl start opsd`, \
             or name its socket with --socket or OPSD_SOCKET",
            socket.display()
        ),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => bail!(
            "permission denied on {}: run as root, or as a member of the group set by \
             `control_group` in [defaults]",
            socket.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot connect to {}", socket.display())),
    };
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line).context("cannot send the request")?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("cannot read the daemon's answer")?;
    if answer.is_empty() {
        bail!("the daemon closed the connection without answering");
    }
    serde_json::from_str(&answer)
        .context("the daemon's answer is not understood (version mismatch?)")
}
