//! What one GeoLite2 CSV edition adds to the build steps all editions share (in `build`):
//! which two files it writes, what a block row's answer is, how answers are stored and how
//! they read back. Country, ASN and City each implement [`Edition`]; `build` knows only this
//! trait, and `build_zip` binds each [`super::source::EditionKind`] to its implementation.

use super::csv::CsvReader;
use super::dat::DbType;
use super::error::GeoipError;
use super::source::Source;
use std::io::BufRead;

/// One edition's own part of a build. A value holds the answers stored so far (the record
/// data the tree's leaves point into) and what it needs to make new ones (e.g. locations).
pub(super) trait Edition: Sized {
    /// The IPv4 file's name and type, then the IPv6 file's (which answers IPv4 too).
    const FILES: [(&'static str, DbType); 2];

    /// The columns of a Blocks CSV the answers are made from.
    type Columns;

    /// Reads what the answers need from `src` (e.g. its `Locations-en.csv`), before any block.
    fn load(src: &mut Source) -> Result<Self, GeoipError>;

    /// Finds the answer columns in a Blocks CSV's header.
    fn columns<R: BufRead>(csv: &CsvReader<R>) -> Result<Self::Columns, GeoipError>;

    /// The leaf value of the block row `row` is at (storing its answer if new); `None` skips
    /// the row (no answer the legacy format can hold).
    fn value<R: BufRead>(
        &mut self,
        cols: &Self::Columns,
        row: &CsvReader<R>,
    ) -> Result<Option<u32>, GeoipError>;

    /// The answer at leaf value `v` as the reader renders it, for sample lookups.
    fn render(&self, v: u32) -> Option<String>;

    /// The record data the leaves point into (empty when leaves are the answers).
    fn data(&self) -> &[u8];
}
