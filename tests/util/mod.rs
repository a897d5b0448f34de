//! What the integration tests share: the `opsd` binary under test, free loopback ports, one
//! wait-on-a-condition loop, and the real parts they drive (moto, a stub HTTP server, Apache,
//! nginx, openssl s_server with a plaintext mail front for STARTTLS, a systemd container). One
//! copy of each; every test module uses `crate::util`.

pub mod apache;
pub mod e2e;
pub mod etcd;
pub mod moto;
pub mod nginx;
pub mod openssl;
pub mod starttls;
pub mod stub_http;

use std::time::{Duration, Instant};

/// The `opsd` binary cargo built for these tests.
pub const OPSD: &str = env!("CARGO_BIN_EXE_opsd");

/// How often [`poll_until`] looks at its condition.
const POLL: Duration = Duration::from_millis(50);

/// A loopback port free at the time of the call (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Looks at `cond` every 50 ms until it holds (true) or `within` has passed (false); callers
/// that can say more than [`wait_for`] (a daemon's log) fail with it themselves.
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `cond` holds, failing the test with "timed out waiting for WHAT" after `within`.
pub fn wait_for(what: &str, within: Duration, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(within, cond),
        "timed out waiting for {what} (after {within:?})"
    );
}
