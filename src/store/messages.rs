//! Archived messages as huixi keeps them: the raw line (so nothing WeCom sent is lost) plus the columns
//! the sessionizer needs to find a conversation's messages again.

use super::{text, Store, StoreError};
use crate::archive::{conversation_key, Message};

impl Store {
    /// Inserts messages not seen before (by tenant and msgid); returns how many were new.
    pub async fn insert_messages(
        &self,
        tenant: &str,
        messages: &[Message],
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "{} INTO huixi_messages (tenant, msgid, conversation, action, sender, roomid, msgtime, msgtype, content, raw) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.dialect.insert_ignore()
        );
        let mut new = 0;
        // One transaction per chunk: fast on SQLite, and a crash loses at most an uncommitted chunk,
        // which the next run inserts again.
        for chunk in messages.chunks(500) {
            let mut tx = self.pool.begin().await?;
            for m in chunk {
                let key = conversation_key(m).unwrap_or_else(|| format!("event:{}", m.from));
                new += sqlx::query(&sql)
                    .bind(tenant)
                    .bind(&m.msgid)
                    .bind(key)
                    .bind(m.action.as_str())
                    .bind(&m.from)
                    .bind(&m.roomid)
                    .bind(m.msgtime)
                    .bind(&m.msgtype)
                    .bind(m.text.clone())
                    .bind(&m.raw)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        }
        Ok(new)
    }

    /// Every stored message of the given conversations, parsed again from the raw lines.
    pub async fn conversation_messages(
        &self,
        tenant: &str,
        conversation: &str,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(
            "SELECT msgid, raw FROM huixi_messages WHERE tenant = ? AND conversation = ? ORDER BY msgtime, msgid",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let msgid = text(r, 0)?;
                let raw = text(r, 1)?;
                Message::parse(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("message {msgid}: {e}")))
            })
            .collect()
    }
}
