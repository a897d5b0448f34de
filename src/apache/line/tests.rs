//! Unit tests of error-log line parsing on real Apache 2.4 lines: fields, glued stderr,
//! non-UTF-8 bytes and the 64 KiB cut.

use super::*;

/// Real lines captured from Debian's apache2 2.4 (event MPM) under test.
const CRASHES: &str = include_str!("../../../tests/data/apache/event-crashes.log");
const PHP: &str = include_str!("../../../tests/data/apache/php-fatal.log");

#[test]
fn parses_a_real_child_crash_line() {
    let line = CRASHES
        .lines()
        .find(|l| l.contains("Segmentation"))
        .unwrap();
    let p = ErrorLine::parse(line.as_bytes());
    assert_eq!(p.glued, b"");
    assert_eq!(p.timestamp, Some(&b"Wed Nov 25 05:52:50.032317 2026"[..]));
    assert_eq!(p.module, Some(&b"core"[..]));
    assert_eq!(p.level, Some(&b"notice"[..]));
    assert_eq!(p.pid, Some(28516));
    assert_eq!(p.tid, Some(28516));
    assert_eq!(p.client, None);
    assert_eq!(p.code, Some(52));
    assert_eq!(
        p.message,
        b"AH00052: child pid 28517 exit signal Segmentation fault (11)"
    );
    let t = p.time().unwrap();
    assert_eq!(t.to_string(), "2026-11-25 05:52:50.032317");
}

#[test]
fn parses_a_real_php_line_with_client() {
    let line = PHP.lines().next().unwrap();
    let p = ErrorLine::parse(line.as_bytes());
    assert_eq!(p.module, Some(&b"php"[..]));
    assert_eq!(p.level, Some(&b"error"[..]));
    assert_eq!(p.pid, Some(28900));
    assert_eq!(
        p.client.map(|c| c.split(|&b| b == b':').next().unwrap()),
        Some(&b"127.0.0.1"[..])
    );
    assert_eq!(p.code, None);
    assert!(p.message.starts_with(b"PHP Fatal error:  Uncaught Error"));
}

#[test]
fn every_real_line_has_its_fields() {
    for line in CRASHES.lines() {
        let p = ErrorLine::parse(line.as_bytes());
        assert!(p.time().is_some(), "{line}");
        assert!(
            p.module.is_some() && p.level.is_some() && p.pid.is_some(),
            "{line}"
        );
        assert!(p.code.is_some(), "{line}");
    }
}

#[test]
fn glued_stderr_in_front_is_split_off() {
    let line = b"zend_mm_heap corrupted[Wed Nov 25 05:52:50.032317 2026] [core:notice] [pid 1:tid 2] AH00052: child pid 3 exit signal Segmentation fault (11)";
    let p = ErrorLine::parse(line);
    assert_eq!(p.glued, b"zend_mm_heap corrupted");
    assert_eq!(p.pid, Some(1));
    assert_eq!(p.tid, Some(2));
    assert_eq!(p.code, Some(52));
}

#[test]
fn non_utf8_bytes_do_not_stop_parsing() {
    let mut line = b"\xff\xfe[x] [Wed Nov 25 05:52:50.032317 2026] [ssl:error] [pid 7] [client 10.0.0.1:443] AH02032: bad \xc3\x28 name".to_vec();
    line.extend_from_slice(&[0x80, 0x81]);
    let p = ErrorLine::parse(&line);
    assert_eq!(p.glued, b"\xff\xfe[x] ");
    assert_eq!(p.module, Some(&b"ssl"[..]));
    assert_eq!(p.pid, Some(7));
    assert_eq!(p.tid, None);
    assert_eq!(p.client, Some(&b"10.0.0.1:443"[..]));
    assert_eq!(p.code, Some(2032));
}

#[test]
fn plain_stderr_lines_keep_their_code() {
    let p = ErrorLine::parse(b"AH00016: Configuration Failed");
    assert_eq!(p.timestamp, None);
    assert_eq!(p.code, Some(16));
    let p = ErrorLine::parse(
        b"(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:80",
    );
    assert_eq!(p.code, Some(72));
    assert_eq!(ErrorLine::parse(b"xAH00016: no").code, None);
}

#[test]
fn long_lines_are_cut_at_64_kib() {
    let mut line = b"[Wed Nov 25 05:52:50.032317 2026] [core:error] [pid 1] ".to_vec();
    line.resize(MAX_LINE * 2, b'a');
    let p = ErrorLine::parse(&line);
    assert_eq!(truncate(&line).len(), MAX_LINE);
    assert!(p.message.len() < MAX_LINE);
    assert_eq!(ErrorLine::parse(b"").message, b"");
}
