//! A tenant's WeCom finance-SDK source: its credentials (sealed), its cursor, the lease that makes one
//! replica pull it, its lag, the items it could not read (quarantine) and its media downloads.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::webhooks::{hooked, insert_events};
use super::{now_ms, optional_text, text, Dialect, Store, StoreError};

/// What an operator sets for a tenant's puller. Its `Debug` shows no secret.
#[derive(Clone)]
pub struct WecomConfig {
    pub corpid: String,
    pub secret: String,
    /// PEM private keys by `publickey_ver`.
    pub private_keys: BTreeMap<u32, String>,
    /// The SDK library; empty: the deployment's `HUIXI_WECOM_SDK`.
    pub sdk_path: String,
    pub interval_secs: i64,
    pub lag_alert_secs: i64,
    /// The token and EncodingAESKey of the app's callback (接收消息), which sign and encrypt
    /// `msgaudit_notify`; empty: no callback, the interval only.
    pub notify_token: String,
    pub notify_aes_key: String,
}

impl std::fmt::Debug for WecomConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomConfig")
            .field("corpid", &self.corpid)
            .field(
                "key_versions",
                &self.private_keys.keys().collect::<Vec<_>>(),
            )
            .field("sdk_path", &self.sdk_path)
            .field("interval_secs", &self.interval_secs)
            .field("lag_alert_secs", &self.lag_alert_secs)
            .finish_non_exhaustive()
    }
}

/// A stored source, secrets opened.
#[derive(Debug, Clone)]
pub struct WecomSource {
    pub tenant: String,
    pub config: WecomConfig,
    pub cursor: i64,
    pub status: WecomStatus,
}

/// What may be shown of a source: no secret, no key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WecomStatus {
    pub corpid: String,
    pub key_versions: Vec<u32>,
    pub interval_secs: i64,
    pub lag_alert_secs: i64,
    /// The last seq stored.
    pub cursor: i64,
    /// The newest message time pulled (ms), and how far behind now it is.
    pub newest_msgtime: i64,
    pub lag_secs: i64,
    /// When a pull last reached the end of what WeCom holds (ms).
    pub advanced_at: i64,
    pub pulled_at: i64,
    /// Why the puller stopped, when a person must act.
    pub stopped: Option<String>,
    pub quarantined: i64,
}

/// An archive item that could not be read, kept raw.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub id: i64,
    pub seq: i64,
    pub msgid: String,
    pub raw: String,
    pub reason: String,
    pub at: i64,
}

/// The rest of a page's commit, in the transaction that stores its messages.
#[derive(Debug, Clone, Default)]
pub struct PageCommit {
    pub owner: String,
    /// The cursor this page was read from, and the last seq of the page.
    pub from_seq: i64,
    pub to_seq: i64,
    pub newest_msgtime: i64,
    /// Items of the page that could not be read: (seq, msgid, raw item, reason).
    pub quarantine: Vec<(i64, String, String, String)>,
    /// Media of the page's messages: (msgid, sdkfileid, md5sum, filesize).
    pub media: Vec<(String, String, String, i64)>,
}

/// A media file still to fetch.
#[derive(Debug, Clone)]
pub struct MediaTodo {
    pub msgid: String,
    pub sdkfileid: String,
    pub md5sum: String,
    pub filesize: i64,
    pub indexbuf: String,
    pub written: i64,
}

impl Store {
    /// Sets a tenant's source. A source already there keeps its cursor; a stop is cleared.
    pub async fn put_wecom_source(&self, tenant: &str, c: &WecomConfig) -> Result<(), StoreError> {
        let key = self.key.as_deref();
        let keys = serde_json::to_string(&c.private_keys).expect("keys serialize");
        let seal = |s: &str| crate::secrets::seal(key, s);
        let (secret, keys) = (seal(&c.secret), seal(&keys));
        let (token, aes) = (seal(&c.notify_token), seal(&c.notify_aes_key));
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_wecom_sources (tenant, corpid, secret, private_keys, sdk_path, \
                 interval_secs, lag_alert_secs, notify_token, notify_aes_key, advanced_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant) DO UPDATE SET corpid = excluded.corpid, secret = excluded.secret, \
                 private_keys = excluded.private_keys, sdk_path = excluded.sdk_path, \
                 interval_secs = excluded.interval_secs, lag_alert_secs = excluded.lag_alert_secs, \
                 notify_token = excluded.notify_token, notify_aes_key = excluded.notify_aes_key, stopped = NULL, pulled_at = 0"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_wecom_sources (tenant, corpid, secret, private_keys, sdk_path, \
                 interval_secs, lag_alert_secs, notify_token, notify_aes_key, advanced_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE corpid = VALUES(corpid), secret = VALUES(secret), \
                 private_keys = VALUES(private_keys), sdk_path = VALUES(sdk_path), \
                 interval_secs = VALUES(interval_secs), lag_alert_secs = VALUES(lag_alert_secs), \
                 notify_token = VALUES(notify_token), notify_aes_key = VALUES(notify_aes_key), stopped = NULL, pulled_at = 0"
            }
        };
        sqlx::query(sql)
            .bind(tenant)
            .bind(&c.corpid)
            .bind(secret)
            .bind(keys)
            .bind(&c.sdk_path)
            .bind(c.interval_secs)
            .bind(c.lag_alert_secs)
            .bind(token)
            .bind(aes)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn wecom_sources(&self) -> Result<Vec<WecomSource>, StoreError> {
        self.sources_where("", None).await
    }

    pub async fn wecom_source(&self, tenant: &str) -> Result<Option<WecomSource>, StoreError> {
        Ok(self
            .sources_where(" WHERE s.tenant = ?", Some(tenant))
            .await?
            .pop())
    }

    async fn sources_where(
        &self,
        clause: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<WecomSource>, StoreError> {
        let sql = format!(
            "SELECT s.tenant, s.corpid, s.secret, s.private_keys, s.sdk_path, s.interval_secs, \
             s.lag_alert_secs, s.notify_token, s.cursor_seq, s.newest_msgtime, s.advanced_at, \
             s.pulled_at, s.stopped, s.notify_aes_key, (SELECT COUNT(*) FROM huixi_quarantine q WHERE q.tenant = s.tenant \
             AND q.replayed_at IS NULL) FROM huixi_wecom_sources s{clause} ORDER BY s.tenant"
        );
        let mut q = sqlx::query(&sql);
        if let Some(t) = tenant {
            q = q.bind(t);
        }
        let key = self.key.as_deref();
        let now = now_ms();
        let mut out = Vec::new();
        for r in q.fetch_all(&self.pool).await? {
            let tenant = text(&r, 0)?;
            // A source whose secrets do not open (another HUIXI_MASTER_KEY) is shown stopped with
            // the reason, and the other tenants' sources go on.
            let mut unreadable: Option<String> = None;
            let mut open = |what: &str, column: usize| -> Result<String, StoreError> {
                Ok(match crate::secrets::open(key, &text(&r, column)?) {
                    Ok(s) => s,
                    Err(e) => {
                        unreadable.get_or_insert(format!("the stored {what} does not open: {e}"));
                        String::new()
                    }
                })
            };
            let secret = open("secret", 2)?;
            let keys = open("private keys", 3)?;
            let notify_token = open("callback token", 7)?;
            let notify_aes_key = open("callback key", 13)?;
            let private_keys: BTreeMap<u32, String> = match serde_json::from_str(&keys) {
                Ok(k) => k,
                Err(e) => {
                    unreadable.get_or_insert(format!("the stored private keys do not parse: {e}"));
                    BTreeMap::new()
                }
            };
            let newest: i64 = r.try_get(9)?;
            let config = WecomConfig {
                corpid: text(&r, 1)?,
                secret,
                sdk_path: text(&r, 4)?,
                interval_secs: r.try_get(5)?,
                lag_alert_secs: r.try_get(6)?,
                notify_token,
                notify_aes_key,
                private_keys,
            };
            let status = WecomStatus {
                corpid: config.corpid.clone(),
                key_versions: config.private_keys.keys().copied().collect(),
                interval_secs: config.interval_secs,
                lag_alert_secs: config.lag_alert_secs,
                cursor: r.try_get(8)?,
                newest_msgtime: newest,
                lag_secs: if newest > 0 { (now - newest) / 1000 } else { 0 },
                advanced_at: r.try_get(10)?,
                pulled_at: r.try_get(11)?,
                stopped: unreadable.or(optional_text(&r, 12)?),
                quarantined: r.try_get(14)?,
            };
            out.push(WecomSource {
                tenant: tenant.clone(),
                cursor: status.cursor,
                config,
                status,
            });
        }
        Ok(out)
    }

    /// Takes (or renews) the tenant's pull lease for `owner`; false when another holds it.
    pub async fn take_wecom_lease(
        &self,
        tenant: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let taken = sqlx::query(
            "UPDATE huixi_wecom_sources SET lease_owner = ?, lease_until = ? WHERE tenant = ? \
             AND (lease_owner = ? OR lease_until < ?)",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(tenant)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    pub async fn release_wecom_lease(&self, tenant: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_wecom_sources SET lease_until = 0 WHERE tenant = ? AND lease_owner = ?",
        )
        .bind(tenant)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes the tenant's source due now (WeCom's `msgaudit_notify`).
    pub async fn poke_wecom(&self, tenant: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE huixi_wecom_sources SET pulled_at = 0 WHERE tenant = ?")
            .bind(tenant)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// A pull ended: `caught_up` when it reached the end of what WeCom holds.
    pub async fn record_wecom_pull(&self, tenant: &str, caught_up: bool) -> Result<(), StoreError> {
        let now = now_ms();
        let q = if caught_up {
            sqlx::query(
                "UPDATE huixi_wecom_sources SET pulled_at = ?, advanced_at = ? WHERE tenant = ?",
            )
            .bind(now)
            .bind(now)
        } else {
            sqlx::query("UPDATE huixi_wecom_sources SET pulled_at = ? WHERE tenant = ?").bind(now)
        };
        q.bind(tenant).execute(&self.pool).await?;
        Ok(())
    }

    /// Stops a tenant's puller until a person resumes it, with an `ingest.stopped` alert and event.
    pub async fn stop_wecom(&self, tenant: &str, why: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE huixi_wecom_sources SET stopped = ?, lease_until = 0 WHERE tenant = ?")
            .bind(why)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        source_alert(
            &mut tx,
            tenant,
            "ingest.stopped",
            why,
            &now_ms().to_string(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Raises `ingest.lag` for each source that has not caught up for longer than its limit, once
    /// per stall. Returns the tenants alerted.
    pub async fn raise_lag_alerts(&self) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT tenant, advanced_at, lag_alert_secs FROM huixi_wecom_sources \
             WHERE advanced_at + lag_alert_secs * 1000 < ? \
             AND (lag_alerted_at IS NULL OR lag_alerted_at < advanced_at)",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut alerted = Vec::new();
        for r in rows {
            let tenant = text(&r, 0)?;
            let advanced: i64 = r.try_get(1)?;
            let mut tx = self.pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE huixi_wecom_sources SET lag_alerted_at = ? WHERE tenant = ? \
                 AND (lag_alerted_at IS NULL OR lag_alerted_at < advanced_at)",
            )
            .bind(now)
            .bind(&tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 1 {
                let hours = (now - advanced) as f64 / 3_600_000.0;
                let why = format!(
                    "the WeCom archive of tenant {tenant} has not been pulled to the end for {hours:.1} h; \
                     WeCom keeps messages for 5 days"
                );
                source_alert(&mut tx, &tenant, "ingest.lag", &why, &advanced.to_string()).await?;
                alerted.push(tenant);
            }
            tx.commit().await?;
        }
        Ok(alerted)
    }

    pub async fn quarantined(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, seq, msgid, raw, reason, at FROM huixi_quarantine WHERE tenant = ? \
             AND replayed_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(tenant)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Quarantined {
                    id: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    msgid: text(r, 2)?,
                    raw: text(r, 3)?,
                    reason: text(r, 4)?,
                    at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// A quarantined item read at last (its message stored), or still not (`reason` renewed).
    pub async fn settle_quarantined(&self, id: i64, still: Option<&str>) -> Result<(), StoreError> {
        match still {
            None => sqlx::query("UPDATE huixi_quarantine SET replayed_at = ? WHERE id = ?")
                .bind(now_ms())
                .bind(id),
            Some(reason) => sqlx::query("UPDATE huixi_quarantine SET reason = ? WHERE id = ?")
                .bind(reason)
                .bind(id),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn media_todo(
        &self,
        tenant: &str,
        max_attempts: i64,
        limit: usize,
    ) -> Result<Vec<MediaTodo>, StoreError> {
        let rows = sqlx::query(
            "SELECT msgid, sdkfileid, md5sum, filesize, indexbuf, written FROM huixi_media \
             WHERE tenant = ? AND location IS NULL AND attempts < ? ORDER BY msgid LIMIT ?",
        )
        .bind(tenant)
        .bind(max_attempts)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MediaTodo {
                    msgid: text(r, 0)?,
                    sdkfileid: text(r, 1)?,
                    md5sum: text(r, 2)?,
                    filesize: r.try_get(3)?,
                    indexbuf: text(r, 4)?,
                    written: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// How far a media download got: the bytes in its partial file and the SDK's next index.
    pub async fn media_progress(
        &self,
        tenant: &str,
        msgid: &str,
        indexbuf: &str,
        written: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_media SET indexbuf = ?, written = ? WHERE tenant = ? AND msgid = ?",
        )
        .bind(indexbuf)
        .bind(written)
        .bind(tenant)
        .bind(msgid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A download finished (`location`), or failed and starts over next time (`error`).
    pub async fn media_settled(
        &self,
        tenant: &str,
        msgid: &str,
        outcome: Result<&str, &str>,
    ) -> Result<(), StoreError> {
        let q = match outcome {
            Ok(location) => sqlx::query(
                "UPDATE huixi_media SET location = ?, error = NULL WHERE tenant = ? AND msgid = ?",
            )
            .bind(location),
            Err(error) => sqlx::query(
                "UPDATE huixi_media SET error = ?, attempts = attempts + 1, indexbuf = '', written = 0 \
                 WHERE tenant = ? AND msgid = ?",
            )
            .bind(error),
        };
        q.bind(tenant).bind(msgid).execute(&self.pool).await?;
        Ok(())
    }

    /// What the QR codes of a fetched image say. Its conversation is due for analysis again now
    /// (or when it was due already, if later): the image was scanned on arrival without its bytes.
    pub async fn media_qr(
        &self,
        tenant: &str,
        msgid: &str,
        payloads: &[String],
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(payloads).unwrap_or_else(|_| "[]".into());
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE huixi_media SET qr = ? WHERE tenant = ? AND msgid = ?")
            .bind(json)
            .bind(tenant)
            .bind(msgid)
            .execute(&mut *tx)
            .await?;
        let conversation: Option<String> = sqlx::query_scalar(
            "SELECT conversation FROM huixi_messages WHERE tenant = ? AND msgid = ?",
        )
        .bind(tenant)
        .bind(msgid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(conversation) = conversation {
            let upsert = match self.dialect {
                Dialect::Sqlite => {
                    "INSERT INTO huixi_pending_analysis (tenant, conversation, due_at) VALUES (?, ?, ?) \
                     ON CONFLICT (tenant, conversation) DO UPDATE SET \
                     due_at = MAX(huixi_pending_analysis.due_at, excluded.due_at)"
                }
                Dialect::MySql => {
                    "INSERT INTO huixi_pending_analysis (tenant, conversation, due_at) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE due_at = GREATEST(due_at, VALUES(due_at))"
                }
            };
            sqlx::query(upsert)
                .bind(tenant)
                .bind(conversation)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Where a message's media file is, once fetched.
    pub async fn media_location(
        &self,
        tenant: &str,
        msgid: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT location FROM huixi_media WHERE tenant = ? AND msgid = ?")
            .bind(tenant)
            .bind(msgid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => optional_text(&r, 0)?,
            None => None,
        })
    }
}

/// The page's cursor, quarantine and media, in the transaction that stores its messages. Fails when
/// the cursor moved or the lease went to someone else: then the page is not this puller's to store.
pub(super) async fn commit_page(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    tenant: &str,
    page: &PageCommit,
) -> Result<(), StoreError> {
    let moved = sqlx::query(
        "UPDATE huixi_wecom_sources SET cursor_seq = ?, \
         newest_msgtime = CASE WHEN newest_msgtime > ? THEN newest_msgtime ELSE ? END \
         WHERE tenant = ? AND cursor_seq = ? AND lease_owner = ?",
    )
    .bind(page.to_seq)
    .bind(page.newest_msgtime)
    .bind(page.newest_msgtime)
    .bind(tenant)
    .bind(page.from_seq)
    .bind(&page.owner)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved != 1 {
        return Err(StoreError::Conflict(format!(
            "the WeCom cursor of tenant {tenant} is no longer at {} for this puller",
            page.from_seq
        )));
    }
    let now = now_ms();
    let ignore = dialect.insert_ignore();
    for (seq, msgid, raw, reason) in &page.quarantine {
        sqlx::query(&format!(
            "{ignore} INTO huixi_quarantine (tenant, seq, msgid, raw, reason, at) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(tenant)
        .bind(*seq)
        .bind(msgid)
        .bind(raw)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    for (msgid, fileid, md5, size) in &page.media {
        sqlx::query(&format!(
            "{ignore} INTO huixi_media (tenant, msgid, sdkfileid, md5sum, filesize, indexbuf) \
             VALUES (?, ?, ?, ?, ?, '')"
        ))
        .bind(tenant)
        .bind(msgid)
        .bind(fileid)
        .bind(md5)
        .bind(*size)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// An alert about the tenant's source (no session, no message), and its event when hooked.
async fn source_alert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    kind: &'static str,
    why: &str,
    once: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO huixi_alerts (tenant, session_id, msgid, kind, category, severity, word, text, \
         start_char, end_char, evidence, once_key) VALUES (?, '', '', ?, '会话存档', 'high', ?, ?, 0, 0, '[]', ?)",
    )
    .bind(tenant)
    .bind(kind)
    .bind(kind)
    .bind(why)
    .bind(format!("{kind}:{once}"))
    .execute(&mut **tx)
    .await?;
    if hooked(tx, tenant).await? {
        let event = serde_json::json!({"tenant": tenant, "kind": kind, "reason": why});
        insert_events(tx, tenant, vec![(kind, event)]).await?;
    }
    Ok(())
}
