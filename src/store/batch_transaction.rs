//! One transaction over many of a batch run's writes, committed every so often rather than once a
//! group.
//!
//! On SQLite a commit writes every page the transaction dirtied to the write-ahead log. A group's
//! rows land all over the indexes keyed by msgid and session id (hashes), so a small transaction
//! writes a whole 4 KiB page for each of its rows, and the next one writes most of those pages
//! again: at 100k sessions a run wrote 8 GB for a 1 GB store, and waited on it. Spanning many
//! groups, a page is written once for all the rows it took meanwhile. A crash loses the uncommitted
//! span, which the next run does again (a file is settled only at the end of a run).
//!
//! On MariaDB every group is its own commit: row locks held across groups would make workers and
//! the API wait on a batch, and InnoDB logs rows, not pages.

use super::{Dialect, Store, StoreError};

/// Writes between commits on SQLite, counted by the caller in its own unit (messages, conversations).
pub struct BatchTransaction {
    store: Store,
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
    begun: std::time::Instant,
    written: usize,
    every: usize,
}

/// The longest a span holds SQLite's write lock: another process's write (a worker, `huixi serve`)
/// waits for it, and gives up after SQLite's busy timeout of 5 s.
const LONGEST: std::time::Duration = std::time::Duration::from_secs(2);

impl BatchTransaction {
    /// Commits once `every` units were written on SQLite, or the span has lasted 2 s; after each
    /// write on MariaDB, or when `span` is false (a caller that uses the store beside the batch:
    /// SQLite has one connection, and an open transaction would hold it).
    pub fn new(store: &Store, every: usize, span: bool) -> BatchTransaction {
        let spans = span && store.dialect == Dialect::Sqlite;
        BatchTransaction {
            store: store.clone(),
            tx: None,
            begun: std::time::Instant::now(),
            written: 0,
            every: if spans { every.max(1) } else { 1 },
        }
    }

    /// The open transaction, begun now when there is none.
    pub(super) async fn tx(
        &mut self,
    ) -> Result<&mut sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        if self.tx.is_none() {
            self.tx = Some(self.store.begin_write().await?);
            self.begun = std::time::Instant::now();
        }
        Ok(self.tx.as_mut().expect("begun above"))
    }

    /// Whether writes share transactions (false: each is committed as it is made).
    pub(super) fn spans(&self) -> bool {
        self.every > 1
    }

    /// The open transaction, if a write left one open: reads see what it wrote.
    pub(super) fn open(&mut self) -> Option<&mut sqlx::Transaction<'static, sqlx::Any>> {
        self.tx.as_mut()
    }

    /// Counts `units` written, and commits when that makes the span full or it has lasted long
    /// enough.
    pub(super) async fn wrote(&mut self, units: usize) -> Result<(), StoreError> {
        self.written += units;
        if self.written >= self.every || self.begun.elapsed() >= LONGEST {
            self.commit().await?;
        }
        Ok(())
    }

    /// Commits what is written so far; the next write begins a new transaction.
    pub async fn commit(&mut self) -> Result<(), StoreError> {
        self.written = 0;
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}
