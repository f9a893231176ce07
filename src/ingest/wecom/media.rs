//! Media files (images, voice, video, files) of pulled messages: fetched with `GetMediaData` chunk by
//! chunk, each chunk appended to a partial file and its progress (the SDK's next `indexbuf`, the bytes
//! written) stored, so a crash resumes where it stopped; checked against the message's `md5sum`;
//! then put in the media store — a directory by default, an S3-compatible bucket in production —
//! and the store records where the file is.

use std::path::PathBuf;
use std::sync::Arc;

use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{call, SharedSdk};
use crate::settings::IngestSettings;
use crate::store::MediaTodo;
use crate::worker::Context;

/// Tries a file gets (each starting over) before it is left with its error.
const MAX_ATTEMPTS: i64 = 5;

pub struct MediaStore {
    /// Downloads in progress, one partial file per message.
    spool: PathBuf,
    store: Arc<dyn ObjectStore>,
    /// How a location reads: `file:///dir/` or `s3://bucket/prefix/`.
    base: String,
    prefix: String,
}

impl MediaStore {
    pub fn new(settings: &IngestSettings) -> Result<MediaStore, String> {
        let dir = &settings.media_dir;
        std::fs::create_dir_all(dir.join(".partial"))
            .map_err(|e| format!("cannot create the media directory {}: {e}", dir.display()))?;
        let spool = dir.join(".partial");
        if let Some(url) = &settings.media_url {
            let parsed = url::Url::parse(url).map_err(|e| format!("--media-url {url:?}: {e}"))?;
            if parsed.scheme() != "s3" {
                return Err(format!("--media-url {url:?}: expected s3://bucket/prefix"));
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| format!("--media-url {url:?}: {e}"))?;
            let prefix = parsed.path().trim_matches('/').to_string();
            let bucket = parsed.host_str().unwrap_or_default();
            return Ok(MediaStore {
                spool,
                store: Arc::new(store),
                base: format!("s3://{bucket}/"),
                prefix,
            });
        }
        let root = std::fs::canonicalize(dir)
            .map_err(|e| format!("media directory {}: {e}", dir.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| format!("media directory {}: {e}", root.display()))?;
        Ok(MediaStore {
            spool,
            store: Arc::new(store),
            base: format!("file://{}/", root.display()),
            prefix: String::new(),
        })
    }

    /// Where a message's file goes: by tenant, under a hash of the msgid (msgids hold `/` and `=`).
    fn object(&self, tenant: &str, msgid: &str) -> String {
        let name = &crate::digest::hash_parts([tenant, msgid])[..32];
        let tenant_dir = hex::encode(tenant.as_bytes());
        match self.prefix.is_empty() {
            true => format!("{tenant_dir}/{name}"),
            false => format!("{}/{tenant_dir}/{name}", self.prefix),
        }
    }

    fn partial(&self, tenant: &str, msgid: &str) -> PathBuf {
        self.spool
            .join(&crate::digest::hash_parts([tenant, msgid])[..32])
    }
}

/// Fetches every media file of the tenant still to fetch.
pub async fn fetch_all(ctx: &Context, media: &MediaStore, tenant: &str, sdk: SharedSdk) {
    loop {
        let todo = match ctx.store.media_todo(tenant, MAX_ATTEMPTS, 50).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%tenant, "media to fetch: {e}");
                return;
            }
        };
        if todo.is_empty() {
            return;
        }
        let mut any = false;
        for item in todo {
            let outcome = fetch_one(ctx, media, tenant, &sdk, &item).await;
            let recorded = match &outcome {
                Ok((location, qr)) => {
                    any = true;
                    metrics::counter!("huixi_wecom_media_total").increment(1);
                    let settled = ctx
                        .store
                        .media_settled(tenant, &item.msgid, Ok(location))
                        .await;
                    match settled {
                        Ok(()) if !qr.is_empty() => {
                            ctx.store.media_qr(tenant, &item.msgid, qr).await
                        }
                        other => other,
                    }
                }
                Err(why) => {
                    tracing::warn!(%tenant, msgid = %item.msgid, "media not fetched: {why}");
                    let _ = tokio::fs::remove_file(media.partial(tenant, &item.msgid)).await;
                    ctx.store.media_settled(tenant, &item.msgid, Err(why)).await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(%tenant, "media progress: {e}");
                return;
            }
        }
        // Every file of the batch failed: they wait for the next round rather than spin.
        if !any {
            return;
        }
    }
}

/// Fetches one file from where its last try stopped; returns its location, and what the QR codes
/// in it say when it is an image.
async fn fetch_one(
    ctx: &Context,
    media: &MediaStore,
    tenant: &str,
    sdk: &SharedSdk,
    item: &MediaTodo,
) -> Result<(String, Vec<String>), String> {
    let path = media.partial(tenant, &item.msgid);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(|e| format!("partial file {}: {e}", path.display()))?;
    // Bytes past the recorded progress were written by a try that died before recording them.
    file.set_len(item.written as u64)
        .await
        .map_err(|e| format!("partial file: {e}"))?;
    file.seek(std::io::SeekFrom::End(0))
        .await
        .map_err(|e| format!("partial file: {e}"))?;
    let (mut index, mut written) = (item.indexbuf.clone(), item.written);
    // The file may be done already when a crash came between its last chunk and its upload.
    let mut finished = written > 0 && index.is_empty() && written >= item.filesize;
    while !finished {
        let (at, fileid) = (index.clone(), item.sdkfileid.clone());
        let chunk = call(sdk, move |s| s.media(&at, &fileid))
            .await
            .map_err(|e| e.to_string())?;
        file.write_all(&chunk.data)
            .await
            .map_err(|e| format!("partial file: {e}"))?;
        file.flush()
            .await
            .map_err(|e| format!("partial file: {e}"))?;
        written += chunk.data.len() as i64;
        finished = chunk.finished;
        index = if finished {
            String::new()
        } else {
            chunk.next_index
        };
        if !finished && index.is_empty() {
            return Err("GetMediaData gave no index for the next chunk".into());
        }
        ctx.store
            .media_progress(tenant, &item.msgid, &index, written)
            .await
            .map_err(|e| e.to_string())?;
    }
    file.sync_all()
        .await
        .map_err(|e| format!("partial file: {e}"))?;
    drop(file);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("partial file: {e}"))?;
    let sum = hex::encode(Md5::digest(&bytes));
    if !item.md5sum.is_empty() && !sum.eq_ignore_ascii_case(&item.md5sum) {
        return Err(format!(
            "md5 {sum} of the {} bytes fetched is not the message's md5sum {}",
            bytes.len(),
            item.md5sum
        ));
    }
    // Read while the bytes are at hand: the analysis of the image's session needs no media I/O.
    let image = bytes.clone();
    let qr = tokio::task::spawn_blocking(move || crate::sensitive::qr::decode(&image))
        .await
        .unwrap_or_default();
    let object = media.object(tenant, &item.msgid);
    media
        .store
        .put(&ObjectPath::from(object.as_str()), bytes.into())
        .await
        .map_err(|e| format!("media store: {e}"))?;
    let _ = tokio::fs::remove_file(&path).await;
    Ok((format!("{}{object}", media.base), qr))
}
