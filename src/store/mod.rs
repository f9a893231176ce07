//! The store: huixi's tables in a SQLite file (embedded default) or in the CRM's MySQL/MariaDB database
//! (production). One implementation over sqlx's `Any` driver serves both, with the few places where the
//! dialects differ spelled out in [`Dialect`]; all tables carry the `huixi_` prefix and a tenant column.

mod api;
mod archive_files;
mod batch_transaction;
mod consents;
mod conversations;
mod customers;
mod ingest;
mod jobs;
mod kb_documents;
mod llm;
mod messages;
mod migrate;
mod rows;
mod runs;
mod sessions;
mod settings;
mod trajectory;
mod webhooks;
mod wecom;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

pub use api::{Principal, RequestStatus, SessionFilter};
pub use archive_files::SettledFile;
pub use batch_transaction::BatchTransaction;
pub use consents::Consent;
#[cfg(test)]
pub use conversations::StoredSession;
pub use conversations::{Committed, StoredConversation};
pub use customers::{contributions_hash, ProfileWrite, StaleCustomer};
pub use ingest::Ingested;
pub use jobs::{DeadJob, NewJob};
pub use kb_documents::{KbDocumentInfo, KbPut};
pub use llm::{CachedAnswer, UsageGrouping, UsageRow};
pub use runs::RunRecord;
pub use settings::{StoredTenant, TenantSettings};
pub use trajectory::MetricsFilter;
pub use webhooks::OutboxEvent;
pub use wecom::{MediaTodo, PageCommit, WecomConfig, WecomSource, WecomStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to the store at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("{0}")]
    Migration(String),
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store holds data this version cannot read: {0}")]
    Corrupt(String),
    /// Someone else changed what this write depended on (a cursor, a lease): nothing was written.
    #[error("{0}")]
    Conflict(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
}

impl Dialect {
    /// `INSERT` that skips rows whose key already exists.
    fn insert_ignore(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INSERT OR IGNORE",
            Dialect::MySql => "INSERT IGNORE",
        }
    }

    /// The SQL that builds a 超时未回复's once-per-question key from its session and msgid columns.
    fn timeout_key(self, session: &str, msgid: &str) -> String {
        match self {
            Dialect::Sqlite => format!("'timeout:' || {session} || ':' || {msgid}"),
            Dialect::MySql => format!("CONCAT('timeout:', {session}, ':', {msgid})"),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Seals secrets before they are stored ([`crate::secrets`]).
    key: Option<std::sync::Arc<crate::secrets::MasterKey>>,
    /// Message text (`content`, `raw`) is stored sealed with `key`: the CRM's database then holds
    /// no chat in clear.
    seal_messages: bool,
}

impl Store {
    /// Connects and migrates. `sqlite://path` creates the file when missing; `mysql://user:pw@host/db` uses
    /// an existing database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url_to_use) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            if rest.is_empty() {
                return Err(StoreError::Url {
                    url: url.into(),
                    reason: "no file path (use sqlite://huixi.db)".into(),
                });
            }
            let sep = if rest.contains('?') { '&' } else { '?' };
            let with_mode = if rest.contains("mode=") {
                format!("sqlite://{rest}")
            } else {
                format!("sqlite://{rest}{sep}mode=rwc")
            };
            (Dialect::Sqlite, with_mode)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            (Dialect::MySql, url.replacen("mariadb:", "mysql:", 1))
        } else {
            return Err(StoreError::Url {
                url: url.into(),
                reason: "unsupported scheme (expected sqlite:// or mysql://)".into(),
            });
        };
        let options = AnyConnectOptions::from_str(&url_to_use).map_err(|e| StoreError::Url {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let pool = AnyPoolOptions::new()
            // SQLite allows one writer; more connections only add lock contention.
            .max_connections(if dialect == Dialect::Sqlite { 1 } else { 8 })
            // Write-ahead logging: a commit appends to the log and syncs it once, where the default
            // rollback journal syncs the journal and the database (two to three fsyncs a commit),
            // and readers in other processes (a CLI beside a worker) do not block the writer.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        // In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of
                        // the process loses nothing committed, a power cut at most the last commits,
                        // and the file is never corrupt (SQLite's own advice for WAL).
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        // 32 MiB of page cache instead of 2: a batch re-reads the indexes it just
                        // wrote. 64 MiB kept a million-message run above 300 MB peak RSS for at
                        // most 4% more speed (32 MiB ran at 0.96-1.01x of it, side by side).
                        sqlx::query("PRAGMA cache_size = -32768")
                            .execute(&mut *conn)
                            .await?;
                        // A multi-row insert keeps a statement journal: in memory, not in a temporary
                        // file written through system calls. And the log is copied back into the
                        // database every 40 MiB rather than every 4: an index page a batch touches
                        // over and over is written once per checkpoint.
                        sqlx::query("PRAGMA temp_store = MEMORY")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA wal_autocheckpoint = 10000")
                            .execute(&mut *conn)
                            .await?;
                    } else {
                        // Repeatable read takes gap locks on every range a statement scans, and two
                        // conversations' inserts into neighbouring gaps deadlock. Every huixi writer
                        // locks the one row it owns first (its conversation, or the customer it
                        // folds), so read committed is all the isolation it needs.
                        sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(url),
                source,
            })?;
        migrate::run(&pool, dialect).await?;
        Ok(Store {
            pool,
            dialect,
            key: None,
            seal_messages: false,
        })
    }

    /// Secrets are sealed with `key` from now on, and sealed ones opened with it.
    pub fn with_master_key(mut self, key: Option<crate::secrets::MasterKey>) -> Store {
        // Boxed: the cipher's key schedule is a kilobyte, and a store is cloned into every task.
        self.key = key.map(std::sync::Arc::new);
        self.seal_messages = self.key.is_some();
        self
    }

    /// Keeps message text in clear even with a master key (the operator's choice: a CRM that
    /// reads `huixi_messages` itself).
    pub fn with_plaintext_messages(mut self, plaintext: bool) -> Store {
        self.seal_messages = self.key.is_some() && !plaintext;
        self
    }

    /// A transaction that reads before it writes. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that read first and then found another process had
    /// written meanwhile fails at its first write with "database is locked", where an immediate
    /// one waits its turn. MariaDB's row locks need nothing of the kind.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::MySql => self.pool.begin().await?,
        })
    }

    /// The key that seals message text, when messages are sealed.
    fn message_key(&self) -> Option<&crate::secrets::MasterKey> {
        self.key.as_deref().filter(|_| self.seal_messages)
    }

    /// A stored message line, opened.
    fn open_message(&self, stored: &str) -> Result<String, StoreError> {
        crate::secrets::open(self.key.as_deref(), stored)
            .map_err(|e| StoreError::Corrupt(format!("message text: {e}")))
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl Store {
    /// Runs `INSERT …` (with its values bound by `bind`) and returns the new row's id. sqlx's Any
    /// driver reports no insert id for SQLite, and MySQL has no RETURNING: ask each its way.
    async fn insert_returning_id(
        &self,
        sql: &str,
        bind: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<i64, StoreError> {
        use sqlx::Row;
        match self.dialect {
            Dialect::Sqlite => {
                let sql = format!("{sql} RETURNING id");
                Ok(bind(sqlx::query(&sql))
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?)
            }
            Dialect::MySql => bind(sqlx::query(sql))
                .execute(&self.pool)
                .await?
                .last_insert_id()
                .ok_or_else(|| StoreError::Corrupt(format!("the store returned no id for {sql}"))),
        }
    }
}

/// Now, in the epoch milliseconds every huixi table stores times in.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A text column. MySQL reports `utf8mb4_bin` columns (binary collation keeps WeCom's case-sensitive
/// ids distinct) as BLOB through the Any driver, so bytes are accepted too, as long as they are UTF-8.
fn text(row: &sqlx::any::AnyRow, index: usize) -> Result<String, StoreError> {
    use sqlx::Row;
    if let Ok(s) = row.try_get::<String, _>(index) {
        return Ok(s);
    }
    let bytes: Vec<u8> = row.try_get(index)?;
    String::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(format!("column {index} is not UTF-8: {e}")))
}

/// Like [`text`], for a nullable column.
fn optional_text(row: &sqlx::any::AnyRow, index: usize) -> Result<Option<String>, StoreError> {
    use sqlx::Row;
    if let Ok(s) = row.try_get::<Option<String>, _>(index) {
        return Ok(s);
    }
    let bytes: Option<Vec<u8>> = row.try_get(index)?;
    bytes
        .map(|b| {
            String::from_utf8(b)
                .map_err(|e| StoreError::Corrupt(format!("column {index} is not UTF-8: {e}")))
        })
        .transpose()
}

/// Hides a password in a URL before it reaches an error message or a log.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(
            super::redact("mysql://root:secret@db:3306/crm"),
            "mysql://root:***@db:3306/crm"
        );
        assert_eq!(super::redact("sqlite://huixi.db"), "sqlite://huixi.db");
    }
}
