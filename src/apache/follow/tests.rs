//! Unit tests of following a log file: starting at the end or a checkpoint, overlong lines,
//! copytruncate and a rewritten file noticed by its fingerprint.

use super::*;
use std::io::Write;

fn collect(f: &mut FollowedFile, buf: &mut Vec<u8>) -> Vec<String> {
    let mut lines = Vec::new();
    f.read_new(buf, &mut |_: &Path, _: LineAt, chunk: &[u8]| {
        for l in chunk.split_inclusive(|&b| b == b'\n') {
            lines.push(String::from_utf8_lossy(l).into_owned());
        }
    })
    .unwrap();
    lines
}

fn append(path: &Path, text: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
        .write_all(text)
        .unwrap();
}

#[test]
fn start_at_end_skips_old_lines_and_partial_lines_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    append(&path, b"old\n");
    let mut buf = Vec::new();
    let mut f = FollowedFile::open(&path, Start::End).unwrap();
    assert!(collect(&mut f, &mut buf).is_empty());
    append(&path, b"one\ntw");
    assert_eq!(collect(&mut f, &mut buf), ["one\n"]);
    assert_eq!(f.line_offset(), 8);
    append(&path, b"o\n");
    assert_eq!(collect(&mut f, &mut buf), ["two\n"]);
    assert_eq!(f.mark(false).offset, 12);
}

#[test]
fn beginning_and_checkpoint_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    append(&path, b"a\nb\nc\n");
    let mut buf = Vec::new();
    let mut f = FollowedFile::open(&path, Start::Beginning).unwrap();
    assert_eq!(collect(&mut f, &mut buf), ["a\n", "b\n", "c\n"]);
    let mut f = FollowedFile::open(&path, Start::At(2)).unwrap();
    assert_eq!(collect(&mut f, &mut buf), ["b\n", "c\n"]);
    let f = FollowedFile::open(&path, Start::At(99)).unwrap();
    assert_eq!(f.line_offset(), 6);
}

#[test]
fn overlong_lines_are_cut_and_the_rest_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    std::fs::write(&path, b"").unwrap();
    let mut buf = Vec::new();
    let mut f = FollowedFile::open(&path, Start::Beginning).unwrap();
    let mut long = vec![b'x'; MAX_LINE * 3 + 5];
    long.push(b'\n');
    append(&path, &long[..MAX_LINE - 10]);
    assert!(collect(&mut f, &mut buf).is_empty());
    append(&path, &long[MAX_LINE - 10..]);
    append(&path, b"next\n");
    let lines = collect(&mut f, &mut buf);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), MAX_LINE + 1);
    assert_eq!(lines[1], "next\n");
}

#[test]
fn copytruncate_is_noticed_and_the_tail_recovered_from_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    append(&path, b"line 1\n");
    let mut buf = Vec::new();
    let mut f = FollowedFile::open(&path, Start::Beginning).unwrap();
    assert_eq!(collect(&mut f, &mut buf), ["line 1\n"]);
    append(&path, b"line 2\npart");
    assert!(!f.truncated().unwrap());
    // logrotate copytruncate: copy, then truncate; then Apache writes on.
    std::fs::copy(&path, dir.path().join("error.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, b"line 3\n");
    assert!(f.truncated().unwrap());
    let mut recovered = Vec::new();
    let copy = f
        .restart_after_truncation(&mut buf, &mut |_: &Path, _: LineAt, c: &[u8]| {
            recovered.push(String::from_utf8_lossy(c).into_owned())
        })
        .unwrap();
    assert_eq!(copy.map(|(p, _)| p), Some(dir.path().join("error.log.1")));
    assert_eq!(recovered.concat(), "line 2\npart\n");
    assert_eq!(collect(&mut f, &mut buf), ["line 3\n"]);
}

#[test]
fn rewritten_file_of_same_size_is_noticed_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error.log");
    append(&path, b"aaaa\n");
    let mut buf = Vec::new();
    let mut f = FollowedFile::open(&path, Start::Beginning).unwrap();
    collect(&mut f, &mut buf);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, b"bbbb\ncccc\n");
    assert!(f.truncated().unwrap());
}
