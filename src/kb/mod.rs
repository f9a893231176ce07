//! The tenant knowledge base: product facts, price lists, competitor notes, scripts and FAQs that agents
//! compare a conversation against. Embedded default: Qdrant Edge in-process, one shard per tenant under
//! the data directory, searched with sparse BM25 vectors, so no embedding model is needed.
//!
//! Chinese text has no spaces: documents and queries are segmented with jieba (search mode, which also
//! yields the short words inside long ones) before BM25, so "发票" finds "增值税专用发票".
//!
//! Production: a Qdrant server (`--qdrant-url`), one collection per tenant, same vectors and payloads.
//!
//! Isolation is physical: a tenant's chunks live in that tenant's shard or collection, and a search
//! opens only the searching tenant's. Every result is also checked to carry the tenant in its payload.

pub mod chunk;
mod edge;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::{SparseVector, TokenizerType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agents::offline::text::JIEBA;
use crate::agents::Passage;
use crate::archive::Session;

const VECTOR: &str = "text";
/// Chunk size for prompts: a few passages fit beside a conversation.
const MAX_CHUNK_TOKENS: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("knowledge base of tenant {tenant:?} at {path}: {message}")]
    Shard {
        tenant: String,
        path: String,
        message: String,
    },
}

/// A chunk found by a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Stable id of the chunk: what findings cite.
    pub id: String,
    pub source: String,
    pub position: usize,
    pub heading: String,
    pub text: String,
    pub score: f32,
}

/// What ingesting one file did.
#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    pub source: String,
    /// added, replaced, unchanged or removed.
    pub status: &'static str,
    pub chunks: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// Source path → content hash and the ids of its chunks.
    files: BTreeMap<String, (String, Vec<u64>)>,
}

/// A chunk as stored: id, BM25 vector, payload.
pub(crate) struct Point {
    id: u64,
    vector: SparseVector,
    payload: serde_json::Map<String, serde_json::Value>,
}

/// A stored chunk a query found.
pub(crate) struct Found {
    id: u64,
    score: f32,
    payload: serde_json::Map<String, serde_json::Value>,
}

/// Where a tenant's chunks are: embedded (Qdrant Edge) or on a Qdrant server.
enum Backend {
    Edge(Box<edge::EdgeStore>),
    Server(server::ServerStore),
}

impl Backend {
    async fn upsert(&self, points: Vec<Point>) -> Result<(), String> {
        match self {
            Backend::Edge(e) => e.upsert(points),
            Backend::Server(s) => s.upsert(points).await,
        }
    }

    async fn delete(&self, ids: &[u64]) -> Result<(), String> {
        match self {
            Backend::Edge(e) => e.delete(ids),
            Backend::Server(s) => s.delete(ids).await,
        }
    }

    async fn query(&self, vector: SparseVector, top: usize) -> Result<Vec<Found>, String> {
        match self {
            Backend::Edge(e) => e.query(vector, top),
            Backend::Server(s) => s.query(vector, top).await,
        }
    }

    fn flush(&self) {
        if let Backend::Edge(e) = self {
            e.flush();
        }
    }
}

/// One tenant's knowledge base. Its manifest (which files, with which content, made which chunks) is
/// kept under the data directory for either backend.
pub struct TenantKb {
    tenant: String,
    dir: PathBuf,
    backend: Backend,
    bm25: EdgeBm25,
}

/// Function words that every document has: matching on them ranks by noise ("和销售易比" must find
/// the note on 销售易, not any text with a 和 in it).
const FUNCTION_WORDS: &[&str] = &[
    "的", "了", "和", "与", "及", "或", "是", "在", "有", "比", "吗", "呢", "吧", "啊", "呀", "么",
    "我", "你", "您", "他", "她", "它", "们", "我们", "你们", "这", "那", "这个", "那个", "什么",
    "怎么", "怎样", "如何", "多少", "哪", "哪些", "为", "对", "把", "被", "也", "都", "就", "还",
    "要", "能", "会", "可以", "一个", "没有", "不", "很", "更", "the", "a", "an", "of", "and",
    "or", "to", "is",
];

/// Words of a text for BM25: jieba's search-mode segmentation, lower-cased, punctuation and function
/// words dropped.
fn words(text: &str) -> String {
    JIEBA
        .cut_for_search(text, true)
        .into_iter()
        .map(|t| t.word.trim().to_lowercase())
        .filter(|w| w.chars().any(char::is_alphanumeric) && !FUNCTION_WORDS.contains(&w.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chunk_id(tenant: &str, source: &str, position: usize) -> u64 {
    let h = Sha256::digest(format!("{tenant}\0{source}\0{position}").as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("eight bytes"))
}

fn hex_id(id: u64) -> String {
    format!("kb_{id:016x}")
}

impl TenantKb {
    /// Opens (or creates) the tenant's knowledge base: a shard under `data_dir/kb/`, or, with
    /// `qdrant_url`, the tenant's collection on that server.
    pub async fn open(
        data_dir: &Path,
        tenant: &str,
        qdrant_url: Option<&str>,
    ) -> Result<TenantKb, KbError> {
        // Tenant names may hold any character; directory and collection names must not.
        let key = hex::encode(tenant.as_bytes());
        let dir = data_dir.join("kb").join(&key);
        let err = |message: String| KbError::Shard {
            tenant: tenant.to_string(),
            path: qdrant_url.map_or(dir.display().to_string(), str::to_string),
            message,
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let backend = match qdrant_url {
            Some(url) => Backend::Server(
                server::ServerStore::open(url, &format!("huixi_kb_{key}"))
                    .await
                    .map_err(err)?,
            ),
            None => Backend::Edge(Box::new(
                edge::EdgeStore::open(&dir.join("shard")).map_err(err)?,
            )),
        };
        let bm25 = EdgeBm25::new(EdgeBm25Config {
            tokenizer: TokenizerType::Whitespace,
            lowercase: Some(true),
            ..Default::default()
        })
        .map_err(|e| err(e.to_string()))?;
        Ok(TenantKb {
            tenant: tenant.to_string(),
            dir,
            backend,
            bm25,
        })
    }

    fn err(&self, message: impl ToString) -> KbError {
        KbError::Shard {
            tenant: self.tenant.clone(),
            path: self.dir.display().to_string(),
            message: message.to_string(),
        }
    }

    fn manifest(&self) -> Result<Manifest, KbError> {
        match std::fs::read_to_string(self.dir.join("manifest.json")) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| self.err(format!("manifest: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn save_manifest(&self, m: &Manifest) -> Result<(), KbError> {
        let tmp = self.dir.join("manifest.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(m).expect("manifest serializes"),
        )
        .and_then(|()| std::fs::rename(&tmp, self.dir.join("manifest.json")))
        .map_err(|e| self.err(e))
    }

    async fn delete(&self, ids: &[u64]) -> Result<(), KbError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.backend.delete(ids).await.map_err(|e| self.err(e))
    }

    /// Ingests files (directories are walked for .md, .txt, .csv and .jsonl). An unchanged file is left
    /// as it is; a changed one has its old chunks replaced. With `prune`, files ingested earlier that no
    /// longer exist are removed.
    pub async fn ingest(&self, paths: &[PathBuf], prune: bool) -> Result<Vec<Ingested>, KbError> {
        let mut files = Vec::new();
        for p in paths {
            collect(p, &mut files)?;
        }
        let mut manifest = self.manifest()?;
        let mut report = Vec::new();
        for file in files {
            let source = std::fs::canonicalize(&file)
                .unwrap_or(file.clone())
                .display()
                .to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| KbError::File {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            let hash = hex::encode(Sha256::digest(text.as_bytes()));
            let old = manifest.files.get(&source).cloned();
            if old.as_ref().is_some_and(|(h, _)| *h == hash) {
                report.push(Ingested {
                    source,
                    status: "unchanged",
                    chunks: old.map_or(0, |(_, ids)| ids.len()),
                });
                continue;
            }
            let chunks = chunk::chunk_file(&file, &text, MAX_CHUNK_TOKENS).map_err(|message| {
                KbError::File {
                    path: file.display().to_string(),
                    message,
                }
            })?;
            if let Some((_, ids)) = &old {
                self.delete(ids).await?;
            }
            let mut ids = Vec::new();
            let points: Vec<Point> = chunks
                .iter()
                .map(|c| {
                    let id = chunk_id(&self.tenant, &source, c.position);
                    ids.push(id);
                    let indexed = format!("{} {}", words(&c.heading), words(&c.text));
                    let payload = serde_json::json!({
                        "tenant": self.tenant, "source": source, "position": c.position,
                        "heading": c.heading, "text": c.text,
                    });
                    Point {
                        id,
                        vector: self.bm25.embed_document(&indexed),
                        payload: payload.as_object().expect("an object").clone(),
                    }
                })
                .collect();
            if !points.is_empty() {
                self.backend.upsert(points).await.map_err(|e| self.err(e))?;
            }
            report.push(Ingested {
                source: source.clone(),
                status: if old.is_some() { "replaced" } else { "added" },
                chunks: ids.len(),
            });
            manifest.files.insert(source, (hash, ids));
            // Written after each file: a crash loses at most the file in progress, which is redone.
            self.save_manifest(&manifest)?;
        }
        if prune {
            let gone: Vec<String> = manifest
                .files
                .keys()
                .filter(|s| !Path::new(s).exists())
                .cloned()
                .collect();
            for source in gone {
                report.push(self.remove_from(&mut manifest, &source).await?);
            }
        }
        self.backend.flush();
        Ok(report)
    }

    async fn remove_from(
        &self,
        manifest: &mut Manifest,
        source: &str,
    ) -> Result<Ingested, KbError> {
        let (_, ids) = manifest.files.remove(source).unwrap_or_default();
        self.delete(&ids).await?;
        self.save_manifest(manifest)?;
        Ok(Ingested {
            source: source.to_string(),
            status: "removed",
            chunks: ids.len(),
        })
    }

    /// Removes a file's chunks (by the path it was ingested from).
    pub async fn remove(&self, source: &Path) -> Result<Ingested, KbError> {
        let mut manifest = self.manifest()?;
        let key = std::fs::canonicalize(source)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| source.display().to_string());
        let key = if manifest.files.contains_key(&key) {
            key
        } else {
            // A deleted file cannot be canonicalized; match it by its absolute spelling.
            std::path::absolute(source)
                .map(|p| p.display().to_string())
                .unwrap_or(key)
        };
        if !manifest.files.contains_key(&key) {
            return Err(self.err(format!("{} was never ingested", source.display())));
        }
        let done = self.remove_from(&mut manifest, &key).await?;
        self.backend.flush();
        Ok(done)
    }

    pub async fn search(&self, query: &str, top: usize) -> Result<Vec<Hit>, KbError> {
        let terms = words(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .backend
            .query(self.bm25.embed_query(&terms), top)
            .await
            .map_err(|e| self.err(e))?;
        let mut hits = Vec::new();
        for f in found {
            let field = |k: &str| {
                f.payload
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            // Belt and braces: a chunk of another tenant must never leave this function.
            if field("tenant") != self.tenant {
                continue;
            }
            hits.push(Hit {
                id: hex_id(f.id),
                source: field("source"),
                position: f
                    .payload
                    .get("position")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0) as usize,
                heading: field("heading"),
                text: field("text"),
                score: f.score,
            });
        }
        Ok(hits)
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), KbError> {
    let meta = std::fs::metadata(path).map_err(|e| KbError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| KbError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        let supported = e.extension().and_then(|x| x.to_str()).is_some_and(|x| {
            ["md", "markdown", "txt", "text", "csv", "jsonl", "ndjson"].contains(&x)
        });
        if e.is_dir() || supported {
            collect(&e, out)?;
        }
    }
    Ok(())
}

/// Knowledge bases of every tenant under one data directory, opened on first use and kept open.
pub struct Knowledge {
    dir: PathBuf,
    qdrant_url: Option<String>,
    open: tokio::sync::Mutex<BTreeMap<String, std::sync::Arc<TenantKb>>>,
}

/// How much of a conversation makes the search query: its opening says what it is about.
const QUERY_CHARS: usize = 400;
const PASSAGES: usize = 5;

impl Knowledge {
    pub fn new(dir: &Path, qdrant_url: Option<&str>) -> Knowledge {
        Knowledge {
            dir: dir.to_path_buf(),
            qdrant_url: qdrant_url.map(str::to_string),
            open: Default::default(),
        }
    }

    async fn tenant(&self, tenant: &str) -> Result<Option<std::sync::Arc<TenantKb>>, KbError> {
        let mut open = self.open.lock().await;
        if let Some(kb) = open.get(tenant) {
            return Ok(Some(kb.clone()));
        }
        // A tenant that never ingested anything has no knowledge base, and gets no passages.
        if !self
            .dir
            .join("kb")
            .join(hex::encode(tenant.as_bytes()))
            .exists()
        {
            return Ok(None);
        }
        let kb = std::sync::Arc::new(
            TenantKb::open(&self.dir, tenant, self.qdrant_url.as_deref()).await?,
        );
        open.insert(tenant.to_string(), kb.clone());
        Ok(Some(kb))
    }

    /// The tenant's chunks that best match the session's text, as prompt passages.
    pub async fn passages(&self, tenant: &str, session: &Session) -> Result<Vec<Passage>, KbError> {
        let Some(kb) = self.tenant(tenant).await? else {
            return Ok(Vec::new());
        };
        let text: String = session
            .messages
            .iter()
            .filter_map(|m| m.text.as_deref())
            .collect::<Vec<_>>()
            .join(" ");
        let query: String = crate::sensitive::mask_pii(&text)
            .chars()
            .take(QUERY_CHARS)
            .collect();
        Ok(kb
            .search(&query, PASSAGES)
            .await?
            .into_iter()
            .map(|h| Passage {
                id: h.id,
                text: if h.heading.is_empty() {
                    h.text
                } else {
                    format!("{}\n{}", h.heading, h.text)
                },
            })
            .collect())
    }
}
