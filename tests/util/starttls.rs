//! A plaintext mail front on a free 127.0.0.1 port for the STARTTLS tests: it speaks SMTP,
//! IMAP or POP3 up to STARTTLS, then proxies bytes to a real TLS server (`openssl s_server`,
//! which has no plaintext part of its own), so the TLS the probe sees after the upgrade is
//! OpenSSL's. It can also leave STARTTLS out of what it offers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// The mail protocol the front speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mail {
    /// SMTP: 220 greeting, EHLO, STARTTLS.
    Smtp,
    /// IMAP: `* OK` greeting, `a001 STARTTLS`.
    Imap,
    /// POP3: `+OK` greeting, `STLS`.
    Pop3,
}

/// A front listening until dropped.
pub struct Front {
    /// The port it listens on.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one line from the client, a byte at a time (nothing of the TLS after it is taken).
fn line(conn: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while bytes.len() < 4096 {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        if byte[0] == b'\n' {
            return Some(String::from_utf8_lossy(&bytes).trim_end().to_string());
        }
        bytes.push(byte[0]);
    }
    None
}

/// Speaks `mail` with the client; true when it asked for STARTTLS and was told to go ahead.
fn converse(conn: &mut TcpStream, mail: Mail, offer: bool) -> Option<bool> {
    match mail {
        Mail::Smtp => {
            conn.write_all(b"220-front.test ESMTP opsd test front\r\n220 no spam\r\n")
                .ok()?;
            let ehlo = line(conn)?;
            if !ehlo.starts_with("EHLO ") {
                conn.write_all(b"500 5.5.2 EHLO first\r\n").ok()?;
                return Some(false);
            }
            let mut answer = String::from("250-front.test greets you\r\n250-PIPELINING\r\n");
            if offer {
                answer.push_str("250-STARTTLS\r\n");
            }
            answer.push_str("250 8BITMIME\r\n");
            conn.write_all(answer.as_bytes()).ok()?;
            let command = line(conn)?;
            if offer && command == "STARTTLS" {
                conn.write_all(b"220 2.0.0 Ready to start TLS\r\n").ok()?;
                return Some(true);
            }
            conn.write_all(b"502 5.5.1 command not implemented\r\n")
                .ok()?;
        }
        Mail::Imap => {
            let greeting: &[u8] = if offer {
                b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] front ready\r\n"
            } else {
                b"* OK [CAPABILITY IMAP4rev1] front ready\r\n"
            };
            conn.write_all(greeting).ok()?;
            let command = line(conn)?;
            if offer && command == "a001 STARTTLS" {
                conn.write_all(
                    b"* NOTE untagged lines come first\r\na001 OK Begin TLS negotiation now\r\n",
                )
                .ok()?;
                return Some(true);
            }
            conn.write_all(b"a001 BAD unknown command\r\n").ok()?;
        }
        Mail::Pop3 => {
            conn.write_all(b"+OK POP3 front ready\r\n").ok()?;
            let command = line(conn)?;
            if offer && command == "STLS" {
                conn.write_all(b"+OK Begin TLS negotiation\r\n").ok()?;
                return Some(true);
            }
            conn.write_all(b"-ERR unknown command\r\n").ok()?;
        }
    }
    Some(false)
}

/// Copies `from` to `to` until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// Serves one client: the plaintext part, then the proxy to `backend`.
fn serve(mut conn: TcpStream, mail: Mail, offer: bool, backend: u16) {
    if converse(&mut conn, mail, offer) != Some(true) {
        return;
    }
    let Ok(tls) = TcpStream::connect(("127.0.0.1", backend)) else {
        return;
    };
    let (Ok(conn2), Ok(tls2)) = (conn.try_clone(), tls.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || pump(conn2, tls2));
    pump(tls, conn);
    let _ = up.join();
}

impl Front {
    /// Starts a front speaking `mail` (offering STARTTLS when `offer`) before the TLS server
    /// on 127.0.0.1:`backend`.
    pub fn start(mail: Mail, offer: bool, backend: u16) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the front");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    thread::spawn(move || serve(conn, mail, offer, backend));
                }
            }
        });
        Front { port, stop }
    }
}
