//! Applies `migrations/` to the store. sqlx's own migrator records itself in an unprefixed
//! `_sqlx_migrations` table, which in production would sit in the CRM's database beside the CRM's own
//! (possibly also sqlx-managed) tables; this runner keeps its bookkeeping in `huixi_schema_migrations`.
//!
//! Each migration exists once per dialect (`migrations/sqlite`, `migrations/mysql`); both are embedded so
//! the binary migrates a store from any working directory.

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::{Dialect, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    mysql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        mysql: include_str!("../../migrations/mysql/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "llm",
        sqlite: include_str!("../../migrations/sqlite/0002_llm.sql"),
        mysql: include_str!("../../migrations/mysql/0002_llm.sql"),
    },
    Migration {
        version: 3,
        name: "jobs",
        sqlite: include_str!("../../migrations/sqlite/0003_jobs.sql"),
        mysql: include_str!("../../migrations/mysql/0003_jobs.sql"),
    },
    Migration {
        version: 4,
        name: "api",
        sqlite: include_str!("../../migrations/sqlite/0004_api.sql"),
        mysql: include_str!("../../migrations/mysql/0004_api.sql"),
    },
    Migration {
        version: 5,
        name: "customers",
        sqlite: include_str!("../../migrations/sqlite/0005_customers.sql"),
        mysql: include_str!("../../migrations/mysql/0005_customers.sql"),
    },
    Migration {
        version: 6,
        name: "scale",
        sqlite: include_str!("../../migrations/sqlite/0006_scale.sql"),
        mysql: include_str!("../../migrations/mysql/0006_scale.sql"),
    },
    Migration {
        version: 7,
        name: "tenants",
        sqlite: include_str!("../../migrations/sqlite/0007_tenants.sql"),
        mysql: include_str!("../../migrations/mysql/0007_tenants.sql"),
    },
    Migration {
        version: 8,
        name: "kb_documents",
        sqlite: include_str!("../../migrations/sqlite/0008_kb_documents.sql"),
        mysql: include_str!("../../migrations/mysql/0008_kb_documents.sql"),
    },
    Migration {
        version: 9,
        name: "fair_queue",
        sqlite: include_str!("../../migrations/sqlite/0009_fair_queue.sql"),
        mysql: include_str!("../../migrations/mysql/0009_fair_queue.sql"),
    },
    Migration {
        version: 10,
        name: "ingest",
        sqlite: include_str!("../../migrations/sqlite/0010_ingest.sql"),
        mysql: include_str!("../../migrations/mysql/0010_ingest.sql"),
    },
    Migration {
        version: 11,
        name: "behaviours",
        sqlite: include_str!("../../migrations/sqlite/0011_behaviours.sql"),
        mysql: include_str!("../../migrations/mysql/0011_behaviours.sql"),
    },
    Migration {
        version: 12,
        name: "archive_files",
        sqlite: include_str!("../../migrations/sqlite/0012_archive_files.sql"),
        mysql: include_str!("../../migrations/mysql/0012_archive_files.sql"),
    },
    Migration {
        version: 13,
        name: "consent_index",
        sqlite: include_str!("../../migrations/sqlite/0013_consent_index.sql"),
        mysql: include_str!("../../migrations/mysql/0013_consent_index.sql"),
    },
];

pub(super) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    // Two workers starting at once must not both apply a migration.
    match dialect {
        Dialect::MySql => {
            sqlx::query("SELECT GET_LOCK('huixi_migrate', 60)")
                .execute(&mut *conn)
                .await?;
        }
        Dialect::Sqlite => {}
    }
    let result = apply_pending(&mut conn, dialect).await;
    if dialect == Dialect::MySql {
        sqlx::query("SELECT RELEASE_LOCK('huixi_migrate')")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(conn: &mut sqlx::AnyConnection, dialect: Dialect) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS huixi_schema_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            name VARCHAR(128) NOT NULL,
            checksum VARCHAR(64) NOT NULL,
            applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query("SELECT version, checksum FROM huixi_schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, super::text(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;
    for m in MIGRATIONS {
        let sql = match dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::MySql => m.mysql,
        };
        let checksum: String = Sha256::digest(sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some((_, old)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *old != checksum {
                return Err(StoreError::Migration(format!(
                    "migration {} ({}) was changed after it was applied to this store",
                    m.version, m.name
                )));
            }
            continue;
        }
        // SQLite runs DDL inside a transaction, so a failed migration leaves nothing half-applied;
        // MySQL commits each DDL statement implicitly whatever we do.
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for statement in statements(sql) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::Migration(format!(
                        "migration {} ({}) failed: {e}\nstatement: {statement}",
                        m.version, m.name
                    ))
                })?;
        }
        sqlx::query(
            "INSERT INTO huixi_schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(checksum)
        .bind(super::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

/// Splits a migration file into statements. Migration files hold only DDL, with no `;` inside literals.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn comment_only_chunks_are_not_statements() {
        let s: Vec<_> = super::statements("-- a\nCREATE TABLE x (a INT);\n-- tail\n").collect();
        assert_eq!(s, vec!["-- a\nCREATE TABLE x (a INT)"]);
    }
}
