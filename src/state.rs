//! Files under the state directory, and the lock that keeps a second daemon off a state
//! directory already in use. Invariant: neither a `kill -9` of opsd at any instant nor a full
//! disk leaves a state file torn or loses the record it held before the write.
//!
//! Two ways keep it. Files written now and then go through [`crate::atomic_file::write`]
//! (temp file in the same directory, fsync, rename over the old file, fsync the directory; no
//! temp file left on failure). Records rewritten at every run (a job's last run: 1,000
//! `@every 1s` jobs write 1,000 a second) are [`write_record`]s instead: a file of two
//! fixed-size slots, each a checksummed, numbered copy, overwritten in place, the older slot
//! each time. A new inode per write (create, rename, free the old one) was most of the file
//! system's cost of a run; an overwrite allocates nothing, and a torn overwrite (a `kill -9`
//! between two pages of it, a power loss) spoils only the slot being written, whose checksum
//! then fails, so the reader takes the other, the previous record. [`read_json`] reads both
//! kinds of file, so records an older opsd wrote as plain JSON are read as before.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The lock file a running daemon holds in its state directory.
pub const DAEMON_LOCK: &str = "opsd.lock";

/// Held by the running daemon for its whole life; two daemons on one state directory would
/// fire every job twice and overwrite each other's checkpoints.
#[derive(Debug)]
pub struct DaemonLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("another opsd{holder} is already running with the state directory {dir}")]
    Busy {
        /// The state directory.
        dir: PathBuf,
        /// " (pid N)" when the lock file names its holder.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Takes the daemon lock on `dir` (which must exist) and records this process's pid in it.
pub fn lock_daemon(dir: &Path) -> Result<DaemonLock, LockError> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join(DAEMON_LOCK);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0).map_err(io_err)?;
            writeln!(lock, "{}", std::process::id()).map_err(io_err)?;
            Ok(DaemonLock { _lock: lock })
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            Err(LockError::Busy {
                dir: dir.to_path_buf(),
                holder,
            })
        }
        Err((_, errno)) => Err(io_err(io::Error::from(errno))),
    }
}

/// Serializes `value` as pretty JSON and writes it atomically to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    crate::atomic_file::write(path, &json_bytes(value)?)
}

/// Writes `value` (pretty JSON) as the newest record of the two-slot file `path` (see the
/// module doc), without fsync: a reader, and a daemon started after a `kill -9`, sees the new
/// record or the one before it, never a torn one. After a power loss the record may be an
/// older one, or none when the file was only just created. For records rewritten at every
/// run: 1,000 `@every 1s` jobs would otherwise create and delete 1,000 inodes (and fsync
/// 2,000 times) a second. Blocking; one writer per path at a time (the caller's lock).
pub fn write_record<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let payload = json_bytes(value)?;
    let existing = open_record(path)?;
    let Some((file, bytes)) = existing else {
        return replace_record(path, &payload, 1);
    };
    let slots = record::Slots::parse(&bytes);
    match slots.and_then(|s| s.next_write(payload.len())) {
        Some((offset, slot_len, seq)) => {
            let image = record::slot_image(&payload, seq, slot_len);
            std::os::unix::fs::FileExt::write_all_at(&file, &image, offset)
        }
        // Not a record file (an older opsd's JSON), or the record outgrew its slots: the file
        // is replaced whole, atomically, with slots large enough.
        None => {
            let seq = slots.map_or(0, |s| s.newest_seq()) + 1;
            replace_record(path, &payload, seq)
        }
    }
}

/// The record file at `path`, open for writing, and its bytes; `None` when there is none or
/// it is something to replace rather than overwrite (not a regular file, larger than
/// [`MAX_STATE_FILE`]).
fn open_record(path: &Path) -> io::Result<Option<(File, Vec<u8>)>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        // Missing, a symlink (O_NOFOLLOW), a FIFO without a reader: replaced by a new file.
        Err(_) => return Ok(None),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_STATE_FILE {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(Some((file, bytes)))
}

/// Writes a new two-slot record file at `path` holding `payload` as record `seq`, through an
/// atomic replace (a full disk leaves the old file as it was).
fn replace_record(path: &Path, payload: &[u8], seq: u64) -> io::Result<()> {
    let slot_len = record::slot_len_for(payload.len());
    let mut image = record::slot_image(payload, seq, slot_len);
    // The second slot's blocks are written too, so later overwrites allocate nothing.
    image.resize(2 * slot_len, b' ');
    crate::atomic_file::write_unsynced(path, &image)
}

/// `value` as pretty JSON ending in a newline, as the state files are written.
fn json_bytes<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// One thread that writes state records in the order they are asked for, so the runs ending
/// hundreds of times a second do not each hand a write to tokio's blocking pool (which grew
/// and shrank its threads with every burst: thread creation was a measured part of a run's
/// cost) and the async threads never wait on the disk. The thread ends when this is dropped.
#[derive(Debug)]
pub struct RecordWriter {
    queue: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl RecordWriter {
    /// Starts the writer thread.
    pub fn start() -> io::Result<RecordWriter> {
        let (queue, writes) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("opsd-state".into())
            .spawn(move || {
                for write in writes {
                    // A write that panics costs its own answer only, not the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(write));
                }
            })?;
        Ok(RecordWriter { queue })
    }

    /// Runs `write` on the writer thread after the writes asked before it; its result, or
    /// `None` when it panicked.
    pub async fn run<R: Send + 'static>(
        &self,
        write: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = done.send(write());
        });
        self.queue.send(job).ok()?;
        result.await.ok()
    }
}

/// The largest state record read; a larger one is as corrupt as one that is not JSON.
pub const MAX_STATE_FILE: u64 = 1 << 20;

/// Reads JSON state from `path`; `Ok(None)` when the file does not exist yet. It is read with
/// [`crate::bounded_read`]: something at `path` that is not a regular file (a FIFO, a symlink
/// to `/dev/zero`) or is larger than [`MAX_STATE_FILE`] is an error at once, as a record that
/// is not JSON is, never a wait or an endless read.
///
/// A [`write_record`] file gives its newest slot whose checksum holds; one with no such slot
/// (its only record torn) is as corrupt as one that is not JSON.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match crate::bounded_read::read(path, MAX_STATE_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let json = match record::Slots::parse(&bytes) {
        Some(slots) => slots.newest().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no slot of the record is whole", path.display()),
            )
        })?,
        None => &bytes[..],
    };
    serde_json::from_slice(json).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The two-slot record format of [`write_record`]. Each slot starts with a fixed-width text
/// line `opsd-record seq=<20 digits> len=<10 digits> crc=<8 hex>` (the CRC-32 of the seq, the
/// len and the payload), then the payload, then spaces up to the slot's end: `cat` shows
/// both copies. The file is twice a slot long.
mod record {
    /// What each slot's header line starts with.
    const MAGIC: &[u8] = b"opsd-record seq=";
    /// The header line's length, newline included.
    pub const HEADER: usize = 16 + 20 + 5 + 10 + 5 + 8 + 1;
    /// The smallest slot: most last-run records are a few hundred bytes.
    const MIN_SLOT: usize = 4096;

    /// A slot long enough for `payload_len` bytes: [`MIN_SLOT`] or the next power of two.
    pub fn slot_len_for(payload_len: usize) -> usize {
        (HEADER + payload_len).next_power_of_two().max(MIN_SLOT)
    }

    /// The CRC-32 a slot's header carries.
    fn checksum(seq: u64, payload: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_le_bytes());
        h.update(&(payload.len() as u64).to_le_bytes());
        h.update(payload);
        h.finalize()
    }

    /// A whole slot of `slot_len` bytes holding `payload` as record `seq`.
    pub fn slot_image(payload: &[u8], seq: u64, slot_len: usize) -> Vec<u8> {
        let mut out = format!(
            "opsd-record seq={seq:020} len={:010} crc={:08x}\n",
            payload.len(),
            checksum(seq, payload)
        )
        .into_bytes();
        out.extend_from_slice(payload);
        out.resize(slot_len, b' ');
        out
    }

    /// One slot's record, when its header and checksum hold: (seq, payload).
    fn decode(slot: &[u8]) -> Option<(u64, &[u8])> {
        let header = slot.get(..HEADER)?;
        let text = std::str::from_utf8(header.strip_prefix(MAGIC)?).ok()?;
        let (seq, rest) = text.split_once(" len=")?;
        let (len, rest) = rest.split_once(" crc=")?;
        let crc = rest.strip_suffix('\n')?;
        let (seq, len, crc): (u64, usize, u32) = (
            seq.parse().ok()?,
            len.parse().ok()?,
            u32::from_str_radix(crc, 16).ok()?,
        );
        let payload = slot.get(HEADER..HEADER.checked_add(len)?)?;
        (checksum(seq, payload) == crc).then_some((seq, payload))
    }

    /// A record file's two slots as read.
    #[derive(Debug, Clone, Copy)]
    pub struct Slots<'a> {
        /// Each slot's record, when whole.
        slots: [Option<(u64, &'a [u8])>; 2],
        /// The length of one slot.
        slot_len: usize,
    }

    impl<'a> Slots<'a> {
        /// `bytes` as a record file; `None` when it is not one (a slot header at the start
        /// of neither half: plain JSON starts with `{`).
        pub fn parse(bytes: &'a [u8]) -> Option<Slots<'a>> {
            let slot_len = bytes.len() / 2;
            let (a, b) = bytes.split_at(slot_len);
            if bytes.len() % 2 != 0 || !(a.starts_with(MAGIC) || b.starts_with(MAGIC)) {
                return None;
            }
            Some(Slots {
                slots: [decode(a), decode(b)],
                slot_len,
            })
        }

        /// Which slot holds the newest whole record.
        fn newest_index(&self) -> Option<usize> {
            (0..2)
                .filter_map(|i| self.slots[i].map(|(seq, _)| (seq, i)))
                .max()
                .map(|(_, i)| i)
        }

        /// The newest whole record's payload.
        pub fn newest(&self) -> Option<&'a [u8]> {
            self.newest_index()
                .and_then(|i| self.slots[i].map(|(_, payload)| payload))
        }

        /// The newest whole record's number (0 when there is none).
        pub fn newest_seq(&self) -> u64 {
            self.newest_index()
                .and_then(|i| self.slots[i].map(|(seq, _)| seq))
                .unwrap_or(0)
        }

        /// Where the next record of `payload_len` bytes goes: (offset, slot length, seq) of
        /// the slot that does not hold the newest whole record; `None` when it does not fit.
        pub fn next_write(&self, payload_len: usize) -> Option<(u64, usize, u64)> {
            if HEADER + payload_len > self.slot_len {
                return None;
            }
            let target = match self.newest_index() {
                Some(i) => 1 - i,
                None => 0,
            };
            let offset = (target * self.slot_len) as u64;
            Some((offset, self.slot_len, self.newest_seq() + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_daemon(dir.path()).unwrap();
        let err = lock_daemon(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {})", std::process::id()))
                && err.contains("already running"),
            "{err}"
        );
        drop(first);
        lock_daemon(dir.path()).unwrap();
    }

    #[test]
    fn round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        assert_eq!(read_json::<u32>(&path).unwrap(), None);
        write_json(&path, &1u32).unwrap();
        write_json(&path, &2u32).unwrap();
        assert_eq!(read_json::<u32>(&path).unwrap(), Some(2));
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files are left behind");
    }

    #[tokio::test]
    async fn the_record_writer_runs_writes_in_order_and_answers_each() {
        let writer = RecordWriter::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.json");
        let (a, b) = (path.clone(), path.clone());
        let first = writer.run(move || write_record(&a, &1u32));
        let second = writer.run(move || write_record(&b, &2u32));
        let (first, second) = tokio::join!(first, second);
        assert!(first.unwrap().is_ok() && second.unwrap().is_ok());
        assert_eq!(read_json::<u32>(&path).unwrap(), Some(2));
    }

    #[test]
    fn a_record_is_overwritten_in_place_and_read_back() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last.json");
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), None);
        write_record(&path, &vec![1u32]).unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        for n in 2..=5u32 {
            write_record(&path, &vec![n; n as usize]).unwrap();
            assert_eq!(
                read_json::<Vec<u32>>(&path).unwrap(),
                Some(vec![n; n as usize])
            );
        }
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.ino(), inode, "the file is overwritten, not replaced");
        assert_eq!(meta.len(), 8192, "two 4 KiB slots");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files are left behind");
        // Both copies are there for `cat`: the newest and the one before.
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("opsd-record seq=00000000000000000005"),
            "{text}"
        );
        assert!(
            text.contains("opsd-record seq=00000000000000000004"),
            "{text}"
        );
    }

    #[test]
    fn a_torn_overwrite_at_any_byte_leaves_the_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.json");
        write_record(&path, &"first".to_string()).unwrap();
        write_record(&path, &"second".to_string()).unwrap();
        let before = fs::read(&path).unwrap();
        // What the next write puts where: the slot not holding "second", as record 3.
        let third = json_bytes(&"third, a longer record".to_string()).unwrap();
        let slots = record::Slots::parse(&before).unwrap();
        let (offset, slot_len, seq) = slots.next_write(third.len()).unwrap();
        assert_eq!(seq, 3);
        let image = record::slot_image(&third, seq, slot_len);
        let whole = record::HEADER + third.len();
        // A kill -9 between two pages, a power loss, a full disk: any prefix of the slot.
        for cut in 0..=whole + 8 {
            let mut torn = before.clone();
            let at = offset as usize;
            torn[at..at + cut].copy_from_slice(&image[..cut]);
            fs::write(&path, &torn).unwrap();
            let read = read_json::<String>(&path).unwrap().unwrap();
            let want = if cut >= whole {
                "third, a longer record"
            } else {
                "second"
            };
            assert_eq!(read, want, "cut after {cut} bytes");
            // The next write goes on from there, to the slot that does not hold what was read.
            write_record(&path, &"fourth".to_string()).unwrap();
            assert_eq!(read_json::<String>(&path).unwrap().unwrap(), "fourth");
        }
    }

    #[test]
    fn a_plain_json_record_is_read_and_a_record_outgrowing_its_slots_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.json");
        // As an older opsd wrote it.
        fs::write(&path, "[1, 2]\n").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2]));
        write_record(&path, &vec![3u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(vec![3]));
        let big = vec![7u32; 3000];
        write_record(&path, &big).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&path).unwrap(), Some(big));
        assert!(fs::metadata(&path).unwrap().len() > 8192);
        // Both slots torn: corrupt, an error, as a record that is not JSON is.
        let mut bytes = fs::read(&path).unwrap();
        let half = bytes.len() / 2;
        bytes[record::HEADER + 3] ^= 1;
        bytes[half + 10] = b'x';
        fs::write(&path, &bytes).unwrap();
        let e = read_json::<Vec<u32>>(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn a_fifo_a_device_or_a_huge_record_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // A blocking read would wait for a writer for good: this test would hang.
        let e = read_json::<u32>(&fifo).unwrap_err().to_string();
        assert!(e.contains("fifo.json") && e.contains("a FIFO"), "{e}");
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let e = read_json::<u32>(&zero).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let huge = dir.path().join("huge.json");
        fs::write(&huge, vec![b' '; MAX_STATE_FILE as usize + 1]).unwrap();
        let e = read_json::<u32>(&huge).unwrap_err().to_string();
        assert!(e.contains("larger than 1 MiB"), "{e}");
    }
}
