//! Archive files a run read to the end and committed, by content and analysis fingerprint: what lets
//! `huixi analyze` of an unchanged archive skip its files whole instead of reading, parsing and
//! comparing every line again.

use sqlx::Row;

use super::{Store, StoreError};

/// A file a run read whole, with nothing rejected, and whose conversations it committed.
#[derive(Debug, Clone)]
pub struct SettledFile {
    pub content_hash: String,
    pub path: String,
    pub bytes: u64,
    pub messages: u64,
}

impl Store {
    /// The file of this content, if a run settled it under this analysis fingerprint.
    pub async fn settled_file(
        &self,
        tenant: &str,
        content_hash: &str,
        fingerprint: &str,
    ) -> Result<Option<SettledFile>, StoreError> {
        let row = sqlx::query(
            "SELECT path, bytes, messages FROM huixi_archive_files \
             WHERE tenant = ? AND content_hash = ? AND fingerprint = ?",
        )
        .bind(tenant.to_string())
        .bind(content_hash.to_string())
        .bind(fingerprint.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SettledFile {
                content_hash: content_hash.to_string(),
                path: super::text(&r, 0)?,
                bytes: r.try_get::<i64, _>(1)?.max(0) as u64,
                messages: r.try_get::<i64, _>(2)?.max(0) as u64,
            })
        })
        .transpose()
    }

    /// Records files as settled by `run` under `fingerprint`; a file settled before under another
    /// fingerprint takes the new one.
    pub async fn settle_files(
        &self,
        tenant: &str,
        fingerprint: &str,
        run: i64,
        files: &[SettledFile],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = super::now_ms();
        for f in files {
            sqlx::query("DELETE FROM huixi_archive_files WHERE tenant = ? AND content_hash = ?")
                .bind(tenant.to_string())
                .bind(f.content_hash.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO huixi_archive_files \
                 (tenant, content_hash, fingerprint, path, bytes, messages, run_id, settled_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant.to_string())
            .bind(f.content_hash.clone())
            .bind(fingerprint.to_string())
            .bind(f.path.clone())
            .bind(f.bytes as i64)
            .bind(f.messages as i64)
            .bind(run)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
