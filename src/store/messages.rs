//! Archived messages as huixi keeps them: the raw line (so nothing WeCom sent is lost) plus the columns
//! the sessionizer needs to find a conversation's messages again.

use super::rows::{insert_rows, Value};
use super::{Store, StoreError};
use crate::archive::{conversation_key, Message};

impl Store {
    /// Inserts messages not seen before (by tenant and msgid); returns how many were new.
    pub async fn insert_messages(
        &self,
        tenant: &str,
        messages: &[Message],
    ) -> Result<u64, StoreError> {
        let head = format!("{} INTO {MESSAGE_COLUMNS}", self.dialect.insert_ignore());
        let mut new = 0;
        // One transaction per chunk: a crash loses at most an uncommitted chunk, which the next run
        // inserts again.
        for chunk in messages.chunks(2000) {
            let key = self.message_key();
            let rows = chunk.iter().map(|m| message_row(tenant, m, key)).collect();
            let mut tx = self.pool.begin().await?;
            new += insert_rows(&mut tx, &head, rows).await?;
            tx.commit().await?;
        }
        Ok(new)
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
