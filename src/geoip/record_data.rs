//! The record data of a legacy file whose leaves point at records rather than being the
//! answers (ASN strings, City records): byte 0 unused (a record equal to the segment means
//! "not found", so no record may start at offset 0), then the records, each distinct one
//! stored once so that the many networks with the same answer share it.

use std::collections::HashMap;

/// Records stored once each, by offset; what the leaves of an ASN or City tree point into.
pub(super) struct RecordData {
    /// Byte 0, then the records end to end.
    data: Vec<u8>,
    /// Each stored record's offset.
    index: HashMap<Box<[u8]>, u32>,
}

impl RecordData {
    /// Data holding no record yet (only the unused byte 0).
    pub(super) fn new() -> Self {
        RecordData {
            data: vec![0],
            index: HashMap::new(),
        }
    }

    /// The offset of `record` (its bytes exactly, terminator included), stored if new.
    pub(super) fn offset(&mut self, record: &[u8]) -> u32 {
        if let Some(&at) = self.index.get(record) {
            return at;
        }
        let at = self.data.len() as u32;
        self.data.extend_from_slice(record);
        self.index.insert(record.into(), at);
        at
    }

    /// The data from `offset` to its end (the record there and those after it); `None` past
    /// the end.
    pub(super) fn at(&self, offset: u32) -> Option<&[u8]> {
        self.data.get(offset as usize..)
    }

    /// All the data, as written after the tree.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_is_stored_once_after_the_unused_byte() {
        let mut d = RecordData::new();
        let a = d.offset(b"AS1 x\0");
        assert_eq!(a, 1);
        let b = d.offset(b"AS2 y\0");
        assert_eq!(b, 7);
        assert_eq!(d.offset(b"AS1 x\0"), a);
        assert_eq!(d.bytes(), b"\0AS1 x\0AS2 y\0");
        assert_eq!(d.at(b), Some(&b"AS2 y\0"[..]));
        assert_eq!(d.at(14), None);
    }
}
