//! A tenant's knowledge-base documents as stored: each one's text, digest and size, by name. Every
//! change moves the tenant's configuration version on in its own transaction, so a process that indexes
//! the documents learns of it the way it learns of any other change; an upload of the text already
//! stored is no change. The names and texts are checked by the caller (the API).

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, text, Store, StoreError};
use crate::kb::{digest, Document};

/// A stored document without its text: what a listing shows and what tells an index it is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KbDocumentInfo {
    pub name: String,
    /// Of the UTF-8 text.
    pub bytes: i64,
    /// SHA-256 of the text, hex ([`crate::kb::digest`]).
    pub digest: String,
    /// Epoch milliseconds.
    pub updated_at: i64,
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KbPut {
    Added,
    Replaced,
    /// The same text was stored already: nothing was written and the version stayed.
    Unchanged,
}

impl KbPut {
    pub fn as_str(self) -> &'static str {
        match self {
            KbPut::Added => "added",
            KbPut::Replaced => "replaced",
            KbPut::Unchanged => "unchanged",
        }
    }
}

fn info(row: &sqlx::any::AnyRow) -> Result<KbDocumentInfo, StoreError> {
    Ok(KbDocumentInfo {
        name: text(row, 0)?,
        bytes: row.try_get(1)?,
        digest: text(row, 2)?,
        updated_at: row.try_get(3)?,
    })
}

impl Store {
    /// Stores a document under its name, replacing one of that name.
    pub async fn put_kb_document(
        &self,
        tenant: &str,
        name: &str,
        body: &str,
    ) -> Result<(KbDocumentInfo, KbPut), StoreError> {
        let digest = digest(body);
        let mut tx = self.pool.begin().await?;
        // The version first, as every change of a tenant does: it locks the tenant's settings row, so
        // two uploads queue in one order and the digest read below is the one this put replaces.
        self.bump_tenant_version(&mut tx, tenant, "kb").await?;
        let old = sqlx::query(
            "SELECT name, bytes, digest, updated_at FROM huixi_kb_documents WHERE tenant = ? AND name = ?",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| info(&r))
        .transpose()?;
        let put = match old {
            Some(old) if old.digest == digest => {
                // Rolled back: the version moved on only inside this transaction.
                tx.rollback().await?;
                return Ok((old, KbPut::Unchanged));
            }
            Some(_) => KbPut::Replaced,
            None => KbPut::Added,
        };
        sqlx::query("DELETE FROM huixi_kb_documents WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let stored = KbDocumentInfo {
            name: name.to_string(),
            bytes: body.len() as i64,
            digest,
            updated_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO huixi_kb_documents (tenant, name, body, digest, bytes, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(name)
        .bind(body)
        .bind(&stored.digest)
        .bind(stored.bytes)
        .bind(stored.updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((stored, put))
    }

    /// One document with its text; none when the tenant has no document of that name.
    pub async fn kb_document(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<(KbDocumentInfo, String)>, StoreError> {
        sqlx::query(
            "SELECT name, bytes, digest, updated_at, body FROM huixi_kb_documents \
             WHERE tenant = ? AND name = ?",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Ok((info(&r)?, text(&r, 4)?)))
        .transpose()
    }

    /// The tenant's documents by name, without their texts.
    pub async fn kb_documents(&self, tenant: &str) -> Result<Vec<KbDocumentInfo>, StoreError> {
        sqlx::query(
            "SELECT name, bytes, digest, updated_at FROM huixi_kb_documents WHERE tenant = ? ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(info)
        .collect()
    }

    /// The tenant's documents with their texts, for [`crate::kb::Knowledge::sync`].
    pub async fn kb_document_bodies(&self, tenant: &str) -> Result<Vec<Document>, StoreError> {
        sqlx::query("SELECT name, body FROM huixi_kb_documents WHERE tenant = ? ORDER BY name")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Document {
                    name: text(r, 0)?,
                    body: text(r, 1)?,
                })
            })
            .collect()
    }

    /// Removes a document. False when the tenant had none of that name (and the version stays).
    pub async fn delete_kb_document(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.delete_tenant_item("huixi_kb_documents", "kb", tenant, name)
            .await
    }
}
