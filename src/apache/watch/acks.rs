//! Acknowledgements: how far the consumer of a watch's events got, so the checkpoint never runs
//! ahead of the alerts.
//!
//! Why: events handed on sit in the job's channel until the consumer logs them and queues them
//! for the sinks; a checkpoint saved past them loses them on `kill -9`. The consumer counts the
//! events it has finished with ([`Acks::handled`], a `watch` channel: it never waits), and the
//! watcher keeps, for every event handed on and not yet counted, the file (device and inode)
//! and offset its line starts at ([`InFlight`]). A file's checkpoint is then the start of its
//! oldest unacknowledged event's line, or where reading is when it has none: a restart reads
//! again from there (at least once). The events go through one FIFO channel, so the n-th event
//! the consumer counts is the n-th the watcher handed on. A leaf: it knows nothing of files or
//! rules.

use std::collections::{BTreeMap, VecDeque};
use tokio::sync::watch;

/// The consumer's side: counts the events it has finished with (logged, queued for the
/// sinks), in the order it received them.
#[derive(Debug)]
pub struct Acks(watch::Sender<u64>);

/// The watcher's side of [`Acks`]: how many events the consumer has finished with.
pub type AckReader = watch::Receiver<u64>;

impl Acks {
    /// A new pair: the consumer keeps the [`Acks`], the watch gets the [`AckReader`].
    pub fn new() -> (Acks, AckReader) {
        let (tx, rx) = watch::channel(0);
        (Acks(tx), rx)
    }

    /// Says the consumer has finished with the next event (never waits).
    pub fn handled(&self) {
        self.0.send_modify(|n| *n += 1);
    }
}

/// A file's identity (device, inode) and an offset in it.
pub type Position = ((u64, u64), u64);

/// The events handed on and not yet acknowledged, each with where its line starts.
#[derive(Debug, Default)]
pub struct InFlight {
    /// Events handed on so far.
    sent: u64,
    /// Of `sent`, how many the consumer has acknowledged.
    acked: u64,
    /// The unacknowledged ones, oldest first: sequence number and line start.
    pending: VecDeque<(u64, Position)>,
}

impl InFlight {
    /// Notes one more event handed on, its line starting at `at`.
    pub fn sent(&mut self, at: Position) {
        self.sent += 1;
        self.pending.push_back((self.sent, at));
    }

    /// Events handed on so far.
    pub fn sent_count(&self) -> u64 {
        self.sent
    }

    /// Takes the consumer's count: every event up to the `acked`-th is done with.
    pub fn acked(&mut self, acked: u64) {
        self.acked = self.acked.max(acked.min(self.sent));
        while self
            .pending
            .front()
            .is_some_and(|(seq, _)| *seq <= self.acked)
        {
            self.pending.pop_front();
        }
    }

    /// True when the consumer has finished with every event handed on.
    pub fn caught_up(&self) -> bool {
        self.pending.is_empty()
    }

    /// True when an unacknowledged event's line is in file `id`.
    pub fn holds(&self, id: (u64, u64)) -> bool {
        self.pending.iter().any(|(_, (f, _))| *f == id)
    }

    /// For every file with unacknowledged events, the earliest offset one of their lines
    /// starts at: where its checkpoint must stay.
    pub fn holds_by_file(&self) -> BTreeMap<(u64, u64), u64> {
        let mut out = BTreeMap::new();
        for (_, (id, offset)) in &self.pending {
            out.entry(*id)
                .and_modify(|o: &mut u64| *o = (*o).min(*offset))
                .or_insert(*offset);
        }
        out
    }

    /// Stops holding file `id` back (it was truncated: its old offsets name bytes that are
    /// gone, and a restart could not read them again).
    pub fn forget(&mut self, id: (u64, u64)) {
        self.pending.retain(|(_, (f, _))| *f != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_held_at_its_oldest_unacknowledged_line_until_the_consumer_counts_it() {
        let (a, b) = ((1, 10), (1, 20));
        let mut f = InFlight::default();
        f.sent((a, 100));
        f.sent((b, 5));
        f.sent((a, 300));
        assert_eq!(f.holds_by_file(), BTreeMap::from([(a, 100), (b, 5)]));
        f.acked(1);
        assert_eq!(f.holds_by_file(), BTreeMap::from([(a, 300), (b, 5)]));
        assert!(f.holds(b) && !f.caught_up());
        // A count beyond what was sent (it cannot happen) acknowledges what was sent only.
        f.acked(7);
        assert!(f.caught_up() && f.holds_by_file().is_empty());
        f.sent((a, 400));
        assert!(
            !f.caught_up(),
            "a later event is not acknowledged by an earlier count"
        );
        f.forget(a);
        assert!(f.caught_up());
    }

    #[test]
    fn the_consumer_counts_without_waiting() {
        let (acks, rx) = Acks::new();
        for _ in 0..3 {
            acks.handled();
        }
        assert_eq!(*rx.borrow(), 3);
    }
}
