//! Archived messages as huixi keeps them: the raw line (so nothing WeCom sent is lost) plus the columns
//! the sessionizer needs to find a conversation's messages again.

use super::batch_transaction::BatchTransaction;
use super::rows::{insert_rows, Value};
use super::{Store, StoreError};
use crate::archive::{conversation_key, Message};

impl Store {
    /// Inserts messages not seen before (by tenant and msgid) in `batch`'s transaction; returns how
    /// many were new, and the index of each message refused because its msgid is stored with
    /// different content (the stored one is kept: a msgid names one message, and results already
    /// point at it).
    pub async fn insert_messages(
        &self,
        batch: &mut BatchTransaction,
        tenant: &str,
        messages: &[Message],
    ) -> Result<(u64, Vec<usize>), StoreError> {
        let head = format!("{} INTO {MESSAGE_COLUMNS}", self.dialect.insert_ignore());
        let mut new = 0;
        let mut conflicts = Vec::new();
        const CHUNK: usize = 2000;
        for (c, chunk) in messages.chunks(CHUNK).enumerate() {
            let key = self.message_key();
            let rows = chunk.iter().map(|m| message_row(tenant, m, key)).collect();
            let tx = batch.tx().await?;
            let inserted = insert_rows(tx, &head, rows).await?;
            new += inserted;
            // Only a chunk with ignored rows is read back: a first run pays nothing.
            if inserted < chunk.len() as u64 {
                let ids: Vec<&str> = chunk.iter().map(|m| m.msgid.as_str()).collect();
                let stored = super::ingest::stored_raw(tx, tenant, &ids).await?;
                for (i, m) in chunk.iter().enumerate() {
                    if let Some(raw) = stored.get(m.msgid.as_str()) {
                        if self.open_message(raw)? != m.raw {
                            conflicts.push(c * CHUNK + i);
                        }
                    }
                }
            }
            batch.wrote(chunk.len()).await?;
        }
        Ok((new, conflicts))
    }
}

/// The head of an insert of [`message_row`]s.
pub(super) const MESSAGE_COLUMNS: &str =
    "huixi_messages (tenant, msgid, conversation, action, sender, roomid, msgtime, msgtype, content, raw)";

/// A message's row: the raw line, and the columns that find its conversation again; its text sealed
/// with `key` when there is one.
pub(super) fn message_row(
    tenant: &str,
    m: &Message,
    key: Option<&crate::secrets::MasterKey>,
) -> Vec<Value> {
    let seal = |s: &str| match key {
        Some(k) => k.seal_compact(s),
        None => s.to_string(),
    };
    let key = conversation_key(m).unwrap_or_else(|| format!("event:{}", m.from));
    vec![
        Value::from(tenant),
        Value::from(m.msgid.as_str()),
        Value::Text(key),
        Value::from(m.action.as_str()),
        Value::from(m.from.as_str()),
        Value::from(m.roomid.as_str()),
        Value::Int(m.msgtime),
        Value::from(m.msgtype.as_str()),
        Value::OptText(m.text.as_deref().map(seal)),
        Value::Text(seal(&m.raw)),
    ]
}
