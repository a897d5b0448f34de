//! STARTTLS: the plaintext start of a mail server's session (SMTP, IMAP, POP3) up to the point
//! where the server expects a TLS ClientHello, so that every probe (TLS 1.3, 1.2, the hand-built
//! hellos) runs over the upgraded connection as it would on a TLS port.
//!
//! Bounded: a line is at most [`MAX_LINE`] bytes, a reply at most [`MAX_LINES`] lines, and the
//! caller bounds the time. Bytes are read one at a time so that nothing after the server's last
//! plaintext line (the start of its TLS answer) is taken from the connection. What the server
//! says is quoted in errors escaped and cut short.

use crate::escape::{self, Cut};
use std::fmt;
use std::str::FromStr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest line read from the server (SMTP allows 512 bytes; IMAP capabilities run longer).
pub(crate) const MAX_LINE: usize = 4096;
/// The most lines of one reply (an SMTP EHLO answer lists one extension a line).
pub(crate) const MAX_LINES: usize = 100;
/// How much of a server's line an error quotes.
const QUOTED: usize = 80;

/// The mail protocols whose STARTTLS the probe speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Starttls {
    /// SMTP (RFC 3207): greeting, `EHLO`, `STARTTLS`.
    Smtp,
    /// IMAP (RFC 9051): greeting, `a001 STARTTLS`.
    Imap,
    /// POP3 (RFC 2595): greeting, `STLS`.
    Pop3,
}

impl Starttls {
    /// The names a job or target may give, as written.
    pub const NAMES: [&'static str; 3] = ["smtp", "imap", "pop3"];

    /// The name as written in a job: `smtp`.
    pub fn name(self) -> &'static str {
        match self {
            Starttls::Smtp => "smtp",
            Starttls::Imap => "imap",
            Starttls::Pop3 => "pop3",
        }
    }
}

impl fmt::Display for Starttls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Starttls {
    type Err = String;
    /// `smtp`, `imap` or `pop3` (lower case); the error says which are known.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "smtp" => Ok(Starttls::Smtp),
            "imap" => Ok(Starttls::Imap),
            "pop3" => Ok(Starttls::Pop3),
            other => Err(format!(
                "starttls \"{}\" is not one of \"smtp\", \"imap\", \"pop3\"",
                escape::control(other)
            )),
        }
    }
}

/// The server's line, escaped and cut for an error message.
fn quote(line: &str) -> String {
    let cut = escape::cut(line, QUOTED, Cut::End);
    format!("\"{}\"", escape::control(&cut))
}

/// Reads one line (without its CR LF), one byte at a time.
async fn line<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, String> {
    let mut bytes = Vec::new();
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err("the server closed the connection".to_string())
            }
            Err(e) => return Err(e.to_string()),
        };
        if byte == b'\n' {
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        if bytes.len() == MAX_LINE {
            return Err(format!(
                "the server sent a line longer than {MAX_LINE} bytes"
            ));
        }
        bytes.push(byte);
    }
}

/// Sends one command line.
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, command: &str) -> Result<(), String> {
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .map_err(|e| format!("sending {command}: {e}"))
}

/// One SMTP reply: its code and every line's text (after the code).
async fn smtp_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(u16, Vec<String>), String> {
    let mut texts = Vec::new();
    loop {
        if texts.len() == MAX_LINES {
            return Err(format!(
                "the server sent a reply of more than {MAX_LINES} lines"
            ));
        }
        let line = line(stream).await?;
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an SMTP reply: {}", quote(&line)))?;
        let (more, text) = match line.as_bytes().get(3) {
            Some(b'-') => (true, &line[4..]),
            Some(b' ') => (false, &line[4..]),
            None => (false, ""),
            Some(_) => return Err(format!("not an SMTP reply: {}", quote(&line))),
        };
        texts.push(text.to_string());
        if !more {
            return Ok((code, texts));
        }
    }
}

/// SMTP: the 220 greeting, `EHLO` answered with a list holding `STARTTLS`, then `STARTTLS`
/// answered by 220.
async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), String> {
    let (code, lines) = smtp_reply(stream).await?;
    if code != 220 {
        return Err(format!("greeting {code} {}", quote(&lines.join(" "))));
    }
    send(stream, "EHLO localhost").await?;
    let (code, lines) = smtp_reply(stream).await?;
    if code != 250 {
        return Err(format!("EHLO answered {code} {}", quote(&lines.join(" "))));
    }
    let offered = lines.iter().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    });
    if !offered {
        return Err("the server does not offer STARTTLS (not in its EHLO answer)".to_string());
    }
    send(stream, "STARTTLS").await?;
    match smtp_reply(stream).await? {
        (220, _) => Ok(()),
        (code, lines) => Err(format!(
            "the server refused STARTTLS: {code} {}",
            quote(&lines.join(" "))
        )),
    }
}

/// IMAP: the `* OK` greeting, then `a001 STARTTLS` answered by `a001 OK` (untagged lines before
/// it are skipped, at most [`MAX_LINES`]).
async fn imap<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), String> {
    let greeting = line(stream).await?;
    if !greeting.starts_with("* OK") {
        return Err(format!("greeting {}", quote(&greeting)));
    }
    send(stream, "a001 STARTTLS").await?;
    for _ in 0..MAX_LINES {
        let answer = line(stream).await?;
        if answer.starts_with("* ") {
            continue;
        }
        return match answer.strip_prefix("a001 ") {
            Some(status) if status.starts_with("OK") => Ok(()),
            Some(_) => Err(format!(
                "the server does not offer STARTTLS: {}",
                quote(&answer)
            )),
            None => Err(format!("not an IMAP answer: {}", quote(&answer))),
        };
    }
    Err(format!("no answer to STARTTLS within {MAX_LINES} lines"))
}

/// POP3: the `+OK` greeting, then `STLS` answered by `+OK`.
async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<(), String> {
    let greeting = line(stream).await?;
    if !greeting.starts_with("+OK") {
        return Err(format!("greeting {}", quote(&greeting)));
    }
    send(stream, "STLS").await?;
    let answer = line(stream).await?;
    if answer.starts_with("+OK") {
        Ok(())
    } else {
        Err(format!(
            "the server does not offer STARTTLS: {}",
            quote(&answer)
        ))
    }
}

/// Speaks `protocol` on `stream` until the server waits for a ClientHello; `Err` says what went
/// wrong (the server does not offer STARTTLS, refuses it, or speaks something else).
pub(crate) async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    protocol: Starttls,
) -> Result<(), String> {
    match protocol {
        Starttls::Smtp => smtp(stream).await,
        Starttls::Imap => imap(stream).await,
        Starttls::Pop3 => pop3(stream).await,
    }
}
