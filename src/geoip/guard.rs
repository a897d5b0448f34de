//! What a build may read from a GeoLite2 zip, whoever runs it (`opsd geoip build` or the
//! `geoip` job): the unpacked-size caps of the download path ([`ZipLimits`]), checked against
//! the zip's directory when it is opened and counted again while its members stream (a zip
//! can lie about sizes), and a stop flag that a signal sets to end the build at its next read.

use super::archive::ZipLimits;
use std::cell::Cell;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The caps and the stop flag of one build.
#[derive(Debug, Clone, Default)]
pub struct BuildGuard {
    /// What the zip's members may unpack to, one by one and together.
    pub limits: ZipLimits,
    /// Once set, the build stops at its next read with [`Stop::Signal`].
    pub stop: Arc<AtomicBool>,
}

impl BuildGuard {
    /// True once the stop flag is set.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Why reading a member ended before its end. Carried inside the `io::Error` a [`Limited`]
/// read returns, so the CSV reader tells it apart from a damaged zip.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// One member unpacked to more than [`ZipLimits::max_entry_size`].
    #[error(
        "{}: member {member} unpacks to more than {limit} bytes, the limit for one member; \
         refusing the zip",
        zip.display()
    )]
    Member {
        /// The zip.
        zip: PathBuf,
        /// The member's name in the zip.
        member: String,
        /// The limit passed.
        limit: u64,
    },
    /// The members read so far unpacked to more than [`ZipLimits::max_total_size`].
    #[error(
        "{}: its members unpack to more than {limit} bytes in all, the limit for one zip; \
         refusing the zip",
        zip.display()
    )]
    Total {
        /// The zip.
        zip: PathBuf,
        /// The limit passed.
        limit: u64,
    },
    /// The stop flag was set (a signal).
    #[error("stopped by a signal")]
    Signal,
}

/// A member's reader that counts what it unpacks against the caps and checks the stop flag
/// before each read.
pub struct Limited<'a, R> {
    inner: R,
    zip: &'a Path,
    member: String,
    read: u64,
    total: &'a Cell<u64>,
    guard: &'a BuildGuard,
}

impl<'a, R: Read> Limited<'a, R> {
    /// Reads `member` of `zip` through `inner`, adding what it unpacks to `total` (the count
    /// of every member read from this zip so far).
    pub fn new(
        inner: R,
        zip: &'a Path,
        member: &str,
        total: &'a Cell<u64>,
        guard: &'a BuildGuard,
    ) -> Self {
        Limited {
            inner,
            zip,
            member: member.to_string(),
            read: 0,
            total,
            guard,
        }
    }
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.guard.stopped() {
            return Err(io::Error::other(Stop::Signal));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.total.set(self.total.get() + n as u64);
        let limits = &self.guard.limits;
        if self.read > limits.max_entry_size {
            return Err(io::Error::other(Stop::Member {
                zip: self.zip.to_path_buf(),
                member: self.member.clone(),
                limit: limits.max_entry_size,
            }));
        }
        if self.total.get() > limits.max_total_size {
            return Err(io::Error::other(Stop::Total {
                zip: self.zip.to_path_buf(),
                limit: limits.max_total_size,
            }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(entry: u64, total: u64) -> BuildGuard {
        BuildGuard {
            limits: ZipLimits {
                max_entry_size: entry,
                max_total_size: total,
                max_entries: 10,
            },
            stop: Arc::default(),
        }
    }

    fn drain(r: impl Read) -> io::Result<u64> {
        io::copy(&mut io::BufReader::new(r), &mut io::sink())
    }

    #[test]
    fn a_member_or_a_zip_past_its_cap_stops_with_the_cap_named() {
        let g = guard(1 << 20, 3 << 20);
        let total = Cell::new(0);
        let zip = Path::new("/x/z.zip");
        let ok = Limited::new(io::repeat(b'\n').take(1 << 20), zip, "a.csv", &total, &g);
        assert_eq!(drain(ok).unwrap(), 1 << 20);
        let big = Limited::new(io::repeat(b'\n'), zip, "b.csv", &total, &g);
        let e = drain(big).unwrap_err().downcast::<Stop>().unwrap();
        assert!(
            matches!(e, Stop::Member { ref member, limit, .. }
            if member == "b.csv" && limit == 1 << 20),
            "{e}"
        );
        assert!(e.to_string().contains("/x/z.zip: member b.csv"), "{e}");
        // Two more members within their own cap pass the zip's.
        let third = Limited::new(io::repeat(0).take(1 << 20), zip, "c.csv", &total, &g);
        let e = drain(third).unwrap_err().downcast::<Stop>().unwrap();
        assert!(matches!(e, Stop::Total { .. }), "{e}");
    }

    #[test]
    fn the_stop_flag_ends_the_next_read() {
        let g = guard(u64::MAX, u64::MAX);
        let total = Cell::new(0);
        let mut r = Limited::new(io::repeat(1), Path::new("z.zip"), "m", &total, &g);
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 16);
        g.stop.store(true, Ordering::Relaxed);
        let e = r.read(&mut buf).unwrap_err().downcast::<Stop>().unwrap();
        assert!(matches!(e, Stop::Signal), "{e}");
    }
}
