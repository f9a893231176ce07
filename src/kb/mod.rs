//! The tenant knowledge base: product facts, price lists, competitor notes, scripts and FAQs that agents
//! compare a conversation against. Embedded default: Qdrant Edge in-process, one shard per tenant under
//! the data directory, searched with sparse BM25 vectors, so no embedding model is needed.
//!
//! Chinese text has no spaces: documents and queries are segmented with jieba (search mode, which also
//! yields the short words inside long ones) before BM25, so "发票" finds "增值税专用发票".
//!
//! With an embeddings model (`--embeddings-model`), each chunk also gets a dense vector and a search runs
//! both queries and fuses the rankings with Reciprocal Rank Fusion: BM25 keeps exact terms (prices,
//! product names), the dense side finds a passage that says the same thing in other words. A shard's
//! vector sizes are fixed when it is made, so the dense vectors' model and size name the store, and a
//! new model moves every chunk into a new one.
//!
//! Production: a Qdrant server (`--qdrant-url`), one collection per tenant, same vectors and payloads.
//!
//! Isolation is physical: a tenant's chunks live in that tenant's shard or collection, and a search
//! opens only the searching tenant's. Every result is also checked to carry the tenant in its payload.

pub mod chunk;
mod edge;
mod embed;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::{SparseVector, TokenizerType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agents::offline::text::JIEBA;
use crate::agents::Passage;
use crate::archive::Session;

pub use embed::{EmbedConfig, Embedder};

const VECTOR: &str = "text";
/// The dense vector's name, next to the sparse one in every point.
const DENSE: &str = "dense";
/// Reciprocal Rank Fusion's k: the usual 60, so a chunk near the top of both lists beats one that tops
/// only one of them.
const RRF_K: usize = 60;
/// Chunk size for prompts: a few passages fit beside a conversation.
const MAX_CHUNK_TOKENS: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("stored documents of tenant {tenant:?}: {message}")]
    Documents { tenant: String, message: String },
    #[error("knowledge base of tenant {tenant:?} at {path}: {message}")]
    Shard {
        tenant: String,
        path: String,
        message: String,
    },
}

/// A chunk found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// Stable id of the chunk: what findings cite.
    pub id: String,
    pub source: String,
    pub position: usize,
    pub heading: String,
    pub text: String,
    pub score: f32,
}

/// A document given by name and text (uploaded, kept in the store) rather than read from a file. The
/// name's extension gives its format, as a file's does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub name: String,
    pub body: String,
}

/// Where a document's chunks say they come from. File sources are absolute paths, so no file's source
/// starts like this, and a document never replaces a file's chunks or a file a document's.
const DOC_SOURCE: &str = "doc:";

pub fn document_source(name: &str) -> String {
    format!("{DOC_SOURCE}{name}")
}

/// The name of the document a chunk's source is, if it is one (and not a file).
pub fn source_document(source: &str) -> Option<&str> {
    source.strip_prefix(DOC_SOURCE)
}

impl Document {
    fn source(&self) -> String {
        document_source(&self.name)
    }
}

/// A text's content hash, as the manifest records it and the store keeps beside a document: SHA-256
/// in hex. One spelling, so the store's digest tells whether an index already holds a document.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
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
    /// The model and size of the chunks' dense vectors; none: BM25 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dense: Option<Dense>,
    /// Source path → content hash and the ids of its chunks.
    files: BTreeMap<String, (String, Vec<u64>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Dense {
    model: String,
    /// Learnt from the endpoint's first answer.
    dim: usize,
}

/// A chunk as stored: id, BM25 vector, dense vector when embeddings are on, payload.
pub(crate) struct Point {
    id: u64,
    vector: SparseVector,
    dense: Option<Vec<f32>>,
    payload: serde_json::Map<String, serde_json::Value>,
}

impl Point {
    /// What the dense vector is made from: the chunk as a reader sees it.
    fn dense_text(&self) -> String {
        let field = |k| text_field(&self.payload, k);
        match field("heading") {
            "" => field("text").to_string(),
            heading => format!("{heading}\n{}", field("text")),
        }
    }
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

/// Points per upsert: keeps a request to a server well under gRPC's message limit.
const UPSERT_BATCH: usize = 256;

impl Backend {
    /// The store for chunks with `dense` vectors (or none). Its name carries the model and size, as a
    /// shard or collection cannot change its vectors once made.
    async fn open(
        dir: &Path,
        key: &str,
        qdrant_url: Option<&str>,
        dense: Option<&Dense>,
    ) -> Result<Backend, String> {
        let suffix = dense.map_or(String::new(), |d| {
            let h = Sha256::digest(format!("{}\0{}", d.model, d.dim).as_bytes());
            format!("_{}", &hex::encode(h)[..12])
        });
        let dim = dense.map(|d| d.dim);
        Ok(match qdrant_url {
            Some(url) => Backend::Server(
                server::ServerStore::open(url, &format!("huixi_kb_{key}{suffix}"), dim).await?,
            ),
            None => Backend::Edge(Box::new(edge::EdgeStore::open(
                &dir.join(format!("shard{suffix}")),
                dim,
            )?)),
        })
    }

    async fn upsert(&self, mut points: Vec<Point>) -> Result<(), String> {
        while !points.is_empty() {
            let rest = points.split_off(points.len().min(UPSERT_BATCH));
            match self {
                Backend::Edge(e) => e.upsert(points)?,
                Backend::Server(s) => s.upsert(points).await?,
            }
            points = rest;
        }
        Ok(())
    }

    async fn delete(&self, ids: &[u64]) -> Result<(), String> {
        match self {
            Backend::Edge(e) => e.delete(ids),
            Backend::Server(s) => s.delete(ids).await,
        }
    }

    async fn payloads(&self, ids: &[u64]) -> Result<Vec<Found>, String> {
        match self {
            Backend::Edge(e) => e.payloads(ids),
            Backend::Server(s) => s.payloads(ids).await,
        }
    }

    async fn query(
        &self,
        sparse: Option<SparseVector>,
        dense: Option<Vec<f32>>,
        candidates: usize,
        limit: usize,
    ) -> Result<Vec<Found>, String> {
        match self {
            Backend::Edge(e) => e.query(sparse, dense, candidates, limit),
            Backend::Server(s) => s.query(sparse, dense, candidates, limit).await,
        }
    }

    fn flush(&self) {
        if let Backend::Edge(e) = self {
            e.flush();
        }
    }

    async fn destroy(self) -> Result<(), String> {
        match self {
            Backend::Edge(e) => e.destroy(),
            Backend::Server(s) => s.destroy().await,
        }
    }
}

/// One tenant's knowledge base. Its manifest (which files, with which content, made which chunks) is
/// kept under the data directory for either backend.
pub struct TenantKb {
    tenant: String,
    dir: PathBuf,
    key: String,
    qdrant_url: Option<String>,
    backend: Backend,
    bm25: EdgeBm25,
    embedder: Option<Arc<Embedder>>,
    /// What the stored chunks' dense vectors are, as the manifest says.
    dense: Option<Dense>,
}

/// A file named to `ingest`: unchanged, or read and chunked and waiting to be stored.
enum Planned {
    Unchanged {
        source: String,
        chunks: usize,
    },
    Changed {
        source: String,
        hash: String,
        /// The chunks it had, if it was ingested before.
        old: Option<Vec<u64>>,
        points: Vec<Point>,
    },
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
    /// `qdrant_url`, the tenant's collection on that server. With `embedder`, ingest adds dense
    /// vectors and search is hybrid.
    pub async fn open(
        data_dir: &Path,
        tenant: &str,
        qdrant_url: Option<&str>,
        embedder: Option<Arc<Embedder>>,
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
        let dense = read_manifest(&dir).map_err(err)?.dense;
        let backend = Backend::open(&dir, &key, qdrant_url, dense.as_ref())
            .await
            .map_err(err)?;
        let bm25 = EdgeBm25::new(EdgeBm25Config {
            tokenizer: TokenizerType::Whitespace,
            lowercase: Some(true),
            ..Default::default()
        })
        .map_err(|e| err(e.to_string()))?;
        Ok(TenantKb {
            tenant: tenant.to_string(),
            dir,
            key,
            qdrant_url: qdrant_url.map(str::to_string),
            backend,
            bm25,
            embedder,
            dense,
        })
    }

    fn err(&self, message: impl ToString) -> KbError {
        KbError::Shard {
            tenant: self.tenant.clone(),
            path: self
                .qdrant_url
                .clone()
                .unwrap_or_else(|| self.dir.display().to_string()),
            message: message.to_string(),
        }
    }

    fn manifest(&self) -> Result<Manifest, KbError> {
        read_manifest(&self.dir).map_err(|e| self.err(e))
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

    /// A chunk's point, its BM25 vector made from the payload's heading and text.
    fn point(&self, id: u64, payload: serde_json::Map<String, serde_json::Value>) -> Point {
        let field = |k| text_field(&payload, k);
        let indexed = format!("{} {}", words(field("heading")), words(field("text")));
        Point {
            id,
            vector: self.bm25.embed_document(&indexed),
            dense: None,
            payload,
        }
    }

    /// Gives the points their dense vectors; the vectors' size, if there were any points.
    async fn embed(&self, points: &mut [&mut Point]) -> Result<Option<usize>, KbError> {
        let Some(embedder) = &self.embedder else {
            return Ok(None);
        };
        if points.is_empty() {
            return Ok(None);
        }
        let texts: Vec<String> = points.iter().map(|p| p.dense_text()).collect();
        let vectors = embedder.embed(&texts).await.map_err(|e| self.err(e))?;
        let dim = vectors.first().map(Vec::len);
        for (p, v) in points.iter_mut().zip(vectors) {
            p.dense = Some(v);
        }
        Ok(dim)
    }

    /// Ingests files (directories are walked for .md, .txt, .csv and .jsonl). An unchanged file is left
    /// as it is; a changed one has its old chunks replaced. With `prune`, files ingested earlier that no
    /// longer exist are removed (documents ingested by name are not files, and stay). A different
    /// embeddings model (or vector size) than the stored chunks were made with re-embeds every chunk.
    pub async fn ingest(
        &mut self,
        paths: &[PathBuf],
        prune: bool,
    ) -> Result<Vec<Ingested>, KbError> {
        let mut files = Vec::new();
        for p in paths {
            collect(p, &mut files)?;
        }
        let mut manifest = self.manifest()?;
        self.check_embedder(&manifest)?;
        // Read and chunk first, store after: a model's vector size is known only from its answer.
        let mut planned: Vec<Planned> = Vec::new();
        for file in files {
            let source = std::fs::canonicalize(&file)
                .unwrap_or(file.clone())
                .display()
                .to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| KbError::File {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            let plan = self
                .plan(&manifest, source, &file, &text)
                .map_err(|message| KbError::File {
                    path: file.display().to_string(),
                    message,
                })?;
            planned.push(plan);
        }
        let mut report = self.apply(&mut manifest, planned).await?;
        if prune {
            let gone: Vec<String> = manifest
                .files
                .keys()
                .filter(|s| !s.starts_with(DOC_SOURCE) && !Path::new(s).exists())
                .cloned()
                .collect();
            for source in gone {
                report.retain(|r| r.source != source);
                report.push(self.remove_from(&mut manifest, &source).await?);
            }
        }
        self.backend.flush();
        Ok(report)
    }

    /// Ingests documents given by name and text (uploaded, not read from files), each under the source
    /// `doc:<name>`; the name's extension gives the format, as a file's does. Unchanged ones are left
    /// alone, as in [`TenantKb::ingest`].
    pub async fn ingest_documents(
        &mut self,
        documents: &[Document],
    ) -> Result<Vec<Ingested>, KbError> {
        let mut manifest = self.manifest()?;
        self.check_embedder(&manifest)?;
        let mut planned = Vec::new();
        for d in documents {
            let plan = self
                .plan(&manifest, d.source(), Path::new(&d.name), &d.body)
                .map_err(|message| KbError::File {
                    path: d.source(),
                    message,
                })?;
            planned.push(plan);
        }
        let report = self.apply(&mut manifest, planned).await?;
        self.backend.flush();
        Ok(report)
    }

    /// Makes the documents ingested by name exactly `documents`: new and changed ones are ingested,
    /// ones no longer among them removed, the rest left alone. Files ingested from paths stay.
    pub async fn sync_documents(
        &mut self,
        documents: &[Document],
    ) -> Result<Vec<Ingested>, KbError> {
        let manifest = self.manifest()?;
        let wanted: BTreeSet<String> = documents.iter().map(Document::source).collect();
        let gone: Vec<String> = manifest
            .files
            .keys()
            .filter(|s| s.starts_with(DOC_SOURCE) && !wanted.contains(*s))
            .cloned()
            .collect();
        let mut report = self.ingest_documents(documents).await?;
        if !gone.is_empty() {
            // Read again: ingesting saved its own changes.
            let mut manifest = self.manifest()?;
            for source in gone {
                report.push(self.remove_from(&mut manifest, &source).await?);
            }
            self.backend.flush();
        }
        Ok(report)
    }

    /// Whether the documents ingested by name are exactly those of these names and digests, so that a
    /// sync would change nothing; reads only the manifest.
    pub fn documents_match<'a>(
        &self,
        documents: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<bool, KbError> {
        let manifest = self.manifest()?;
        let mut ingested: BTreeMap<&str, &str> = manifest
            .files
            .iter()
            .filter(|(s, _)| s.starts_with(DOC_SOURCE))
            .map(|(s, (hash, _))| (s.as_str(), hash.as_str()))
            .collect();
        for (name, digest) in documents {
            let source = document_source(name);
            if ingested.remove(source.as_str()) != Some(digest) {
                return Ok(false);
            }
        }
        Ok(ingested.is_empty())
    }

    /// Storing some chunks without dense vectors would leave them out of half of every search.
    fn check_embedder(&self, manifest: &Manifest) -> Result<(), KbError> {
        if let (None, Some(d)) = (&self.embedder, &manifest.dense) {
            return Err(self.err(format!(
                "its chunks have dense vectors from {} ({} dimensions): ingest with \
                 --embeddings-model {0} (or another model, which re-embeds them all)",
                d.model, d.dim
            )));
        }
        Ok(())
    }

    /// One text: unchanged if the manifest has it with this content, else chunked (in the format of
    /// `format`'s extension) into points waiting to be stored.
    fn plan(
        &self,
        manifest: &Manifest,
        source: String,
        format: &Path,
        text: &str,
    ) -> Result<Planned, String> {
        let hash = digest(text);
        let old = manifest.files.get(&source).cloned();
        if let Some((h, ids)) = &old {
            if *h == hash {
                let chunks = ids.len();
                return Ok(Planned::Unchanged { source, chunks });
            }
        }
        let chunks = chunk::chunk_file(format, text, MAX_CHUNK_TOKENS)?;
        let points = chunks
            .iter()
            .map(|c| {
                let payload = serde_json::json!({
                    "tenant": self.tenant, "source": source, "position": c.position,
                    "heading": c.heading, "text": c.text,
                });
                self.point(
                    chunk_id(&self.tenant, &source, c.position),
                    payload.as_object().expect("an object").clone(),
                )
            })
            .collect();
        Ok(Planned::Changed {
            source,
            hash,
            old: old.map(|(_, ids)| ids),
            points,
        })
    }

    /// Stores what was planned: embeds the new chunks (re-embedding the kept ones if the model
    /// changed), replaces each changed text's chunks, and records each in the manifest.
    async fn apply(
        &mut self,
        manifest: &mut Manifest,
        mut planned: Vec<Planned>,
    ) -> Result<Vec<Ingested>, KbError> {
        let mut new_points: Vec<&mut Point> = planned
            .iter_mut()
            .flat_map(|p| match p {
                Planned::Changed { points, .. } => points.iter_mut(),
                Planned::Unchanged { .. } => [].iter_mut(),
            })
            .collect();
        let dim = self.embed(&mut new_points).await?;
        let reembedded = match &self.embedder {
            Some(e)
                if manifest.dense.as_ref().is_none_or(|d| {
                    d.model != e.model() || dim.is_some_and(|dim| dim != d.dim)
                }) =>
            {
                let changed: BTreeSet<&str> = planned
                    .iter()
                    .filter_map(|p| match p {
                        Planned::Changed { source, .. } => Some(source.as_str()),
                        Planned::Unchanged { .. } => None,
                    })
                    .collect();
                let keep: Vec<String> = manifest
                    .files
                    .keys()
                    .filter(|s| !changed.contains(s.as_str()))
                    .cloned()
                    .collect();
                self.reembed(manifest, &keep, dim).await?
            }
            _ => Vec::new(),
        };

        let mut report = Vec::new();
        for entry in planned {
            let (source, hash, old, points) = match entry {
                Planned::Unchanged { source, chunks } => {
                    let status = if reembedded.contains(&source) {
                        "re-embedded"
                    } else {
                        "unchanged"
                    };
                    report.push(Ingested {
                        source,
                        status,
                        chunks,
                    });
                    continue;
                }
                Planned::Changed {
                    source,
                    hash,
                    old,
                    points,
                } => (source, hash, old, points),
            };
            if let Some(ids) = &old {
                self.delete(ids).await?;
            }
            let ids: Vec<u64> = points.iter().map(|p| p.id).collect();
            self.backend.upsert(points).await.map_err(|e| self.err(e))?;
            report.push(Ingested {
                source: source.clone(),
                status: if old.is_some() { "replaced" } else { "added" },
                chunks: ids.len(),
            });
            manifest.files.insert(source, (hash, ids));
            // Written after each file: a crash loses at most the file in progress, which is redone.
            self.save_manifest(manifest)?;
        }
        // Files re-embedded that were not named this time are reported too: they were rewritten.
        for source in reembedded {
            if !report.iter().any(|r| r.source == source) {
                let chunks = manifest.files.get(&source).map_or(0, |(_, ids)| ids.len());
                report.push(Ingested {
                    source,
                    status: "re-embedded",
                    chunks,
                });
            }
        }
        Ok(report)
    }

    /// Moves the chunks of the `keep` files into a store for the embedder's vectors, embedding each
    /// anew from its stored text. `dim` is the size already learnt in this run, if any. The manifest
    /// names the new store before the old one is deleted, so a crash leaves the old store in use.
    /// Returns the files moved.
    async fn reembed(
        &mut self,
        manifest: &mut Manifest,
        keep: &[String],
        dim: Option<usize>,
    ) -> Result<Vec<String>, KbError> {
        let model = self
            .embedder
            .as_ref()
            .expect("re-embedding needs an embedder")
            .model()
            .to_string();
        let ids: Vec<u64> = keep
            .iter()
            .flat_map(|s| manifest.files[s].1.iter().copied())
            .collect();
        let stored = if ids.is_empty() {
            Vec::new()
        } else {
            self.backend.payloads(&ids).await.map_err(|e| self.err(e))?
        };
        if stored.len() != ids.len() {
            return Err(self.err(format!(
                "the manifest lists {} chunks of files ingested earlier, the store holds {}: \
                 re-ingest those files or remove them before changing the embeddings model",
                ids.len(),
                stored.len()
            )));
        }
        let mut points: Vec<Point> = stored
            .into_iter()
            .map(|f| self.point(f.id, f.payload))
            .collect();
        let mut refs: Vec<&mut Point> = points.iter_mut().collect();
        let kept_dim = self.embed(&mut refs).await?;
        let dim = match (dim, kept_dim) {
            (Some(a), Some(b)) if a != b => {
                return Err(self.err(format!(
                    "{model} answered with vectors of {a} and of {b} dimensions"
                )))
            }
            (Some(d), _) | (None, Some(d)) => d,
            // Nothing stored and nothing new: no vectors to learn a size from yet.
            (None, None) => return Ok(Vec::new()),
        };
        let dense = Dense { model, dim };
        let backend = Backend::open(
            &self.dir,
            &self.key,
            self.qdrant_url.as_deref(),
            Some(&dense),
        )
        .await
        .map_err(|e| self.err(e))?;
        backend.upsert(points).await.map_err(|e| self.err(e))?;
        backend.flush();
        manifest.dense = Some(dense.clone());
        self.save_manifest(manifest)?;
        let old = std::mem::replace(&mut self.backend, backend);
        self.dense = Some(dense);
        if let Err(e) = old.destroy().await {
            tracing::warn!("could not delete the knowledge base's old store: {e}");
        }
        Ok(keep.to_vec())
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

    /// The query's dense vector, when both the stored chunks and this search have an embeddings model.
    async fn dense_query(&self, query: &str) -> Result<Option<Vec<f32>>, KbError> {
        let (Some(embedder), Some(dense)) = (&self.embedder, &self.dense) else {
            return Ok(None);
        };
        if query.trim().is_empty() {
            return Ok(None);
        }
        if embedder.model() != dense.model {
            return Err(self.err(format!(
                "its chunks were embedded with {} ({} dimensions), this search uses {}: search with \
                 --embeddings-model {0}, or ingest again with {2} to re-embed them",
                dense.model,
                dense.dim,
                embedder.model()
            )));
        }
        let vector = embedder
            .embed(&[query.to_string()])
            .await
            .map_err(|e| self.err(e))?
            .pop()
            .expect("one vector per input");
        if vector.len() != dense.dim {
            return Err(self.err(format!(
                "{} now answers with {} dimensions, the chunks have {}: ingest again to re-embed them",
                dense.model,
                vector.len(),
                dense.dim
            )));
        }
        Ok(Some(vector))
    }

    /// The `top` chunks for a query: BM25 alone, or BM25 and dense fused by RRF when the chunks
    /// have dense vectors and an embeddings model is configured.
    pub async fn search(&self, query: &str, top: usize) -> Result<Vec<Hit>, KbError> {
        let terms = words(query);
        let sparse = (!terms.is_empty()).then(|| self.bm25.embed_query(&terms));
        let dense = self.dense_query(query).await?;
        let fused = sparse.is_some() && dense.is_some();
        let candidates = (top * 4).max(20);
        // Fused: take every candidate and cut here, so ties are broken the same way each time.
        let limit = if fused { candidates } else { top };
        let mut found = self
            .backend
            .query(sparse, dense, candidates, limit)
            .await
            .map_err(|e| self.err(e))?;
        if fused {
            order_fused(&mut found);
            found.truncate(top);
        }
        let mut hits = Vec::new();
        for f in found {
            let field = |k| text_field(&f.payload, k).to_string();
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

/// RRF gives equal scores to a chunk first in one list and one first in the other; Qdrant leaves their
/// order to a hash map. Best score first, then by id, so the same search gives the same answer.
fn order_fused(found: &mut [Found]) {
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}

/// A text field of a chunk's payload; empty when missing.
fn text_field<'a>(payload: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    payload.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{}: {e}", dir.join("manifest.json").display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(e.to_string()),
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
    embedder: Option<Arc<Embedder>>,
    /// Searches share a tenant's knowledge base; a sync has it alone, so a search never sees half a
    /// replaced document and two syncs do not interleave.
    open: tokio::sync::Mutex<BTreeMap<String, Arc<tokio::sync::RwLock<TenantKb>>>>,
}

/// How much of a conversation makes the search query: its opening says what it is about.
const QUERY_CHARS: usize = 400;
const PASSAGES: usize = 5;

impl Knowledge {
    /// With `embedder`, searches of knowledge bases ingested with the same model are hybrid.
    pub fn new(dir: &Path, qdrant_url: Option<&str>, embedder: Option<Embedder>) -> Knowledge {
        Knowledge {
            dir: dir.to_path_buf(),
            qdrant_url: qdrant_url.map(str::to_string),
            embedder: embedder.map(Arc::new),
            open: Default::default(),
        }
    }

    /// The tenant's knowledge base; with `create`, made when the tenant has none yet.
    async fn tenant(
        &self,
        tenant: &str,
        create: bool,
    ) -> Result<Option<Arc<tokio::sync::RwLock<TenantKb>>>, KbError> {
        let mut open = self.open.lock().await;
        if let Some(kb) = open.get(tenant) {
            return Ok(Some(kb.clone()));
        }
        // A tenant that never ingested anything has no knowledge base, and gets no passages; a
        // search must not leave an empty directory behind for every tenant that asks.
        if !create
            && !self
                .dir
                .join("kb")
                .join(hex::encode(tenant.as_bytes()))
                .exists()
        {
            return Ok(None);
        }
        let kb = Arc::new(tokio::sync::RwLock::new(
            TenantKb::open(
                &self.dir,
                tenant,
                self.qdrant_url.as_deref(),
                self.embedder.clone(),
            )
            .await?,
        ));
        open.insert(tenant.to_string(), kb.clone());
        Ok(Some(kb))
    }

    /// The tenant's `top` chunks for a query; none for a tenant without a knowledge base.
    pub async fn search(&self, tenant: &str, query: &str, top: usize) -> Result<Vec<Hit>, KbError> {
        match self.tenant(tenant, false).await? {
            Some(kb) => kb.read().await.search(query, top).await,
            None => Ok(Vec::new()),
        }
    }

    /// Whether the tenant's knowledge base holds exactly the documents of these names and digests
    /// ([`digest`]): when it does, a [`Knowledge::sync`] would change nothing. Reads only the manifest,
    /// so a caller can ask it with a listing of the store (no texts) before every search.
    pub async fn documents_match(
        &self,
        tenant: &str,
        documents: &[(String, String)],
    ) -> Result<bool, KbError> {
        match self.tenant(tenant, false).await? {
            Some(kb) => kb
                .read()
                .await
                .documents_match(documents.iter().map(|(n, d)| (n.as_str(), d.as_str()))),
            None => Ok(documents.is_empty()),
        }
    }

    /// Makes the tenant's documents in this process's knowledge base match the stored ones: new and
    /// changed ones are ingested, ones no longer stored removed, unchanged ones left alone (no chunking,
    /// no embedding), and files ingested from paths (`huixi kb ingest`) kept. `load` reads the stored
    /// documents; it is called with the tenant's knowledge base held, so two syncs one after the other
    /// each apply what was stored when they ran, never an older read over a newer one. A tenant with no
    /// documents and no knowledge base gets none made.
    pub async fn sync<F, Fut, E>(&self, tenant: &str, load: F) -> Result<Vec<Ingested>, KbError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Document>, E>>,
        E: std::fmt::Display,
    {
        let read = &load;
        let load = move || async move {
            read().await.map_err(|e| KbError::Documents {
                tenant: tenant.to_string(),
                message: e.to_string(),
            })
        };
        let kb = match self.tenant(tenant, false).await? {
            Some(kb) => kb,
            // Read once to learn whether there is anything to make a knowledge base for, and again
            // below with it held: another sync may have made it in between.
            None => {
                if load().await?.is_empty() {
                    return Ok(Vec::new());
                }
                match self.tenant(tenant, true).await? {
                    Some(kb) => kb,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let mut kb = kb.write().await;
        let documents = load().await?;
        kb.sync_documents(&documents).await
    }

    /// The tenant's chunks that best match the session's text, as prompt passages. The query is the
    /// masked text, as in prompts: it goes to the embeddings endpoint too.
    pub async fn passages(&self, tenant: &str, session: &Session) -> Result<Vec<Passage>, KbError> {
        let Some(kb) = self.tenant(tenant, false).await? else {
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
        let hits = kb.read().await.search(&query, PASSAGES).await?;
        Ok(hits
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

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: u64, score: f32) -> Found {
        Found {
            id,
            score,
            payload: Default::default(),
        }
    }

    #[test]
    fn fused_ties_are_ordered_by_id() {
        let mut f = vec![found(9, 1.0 / 60.0), found(3, 0.5), found(4, 1.0 / 60.0)];
        order_fused(&mut f);
        let ids: Vec<u64> = f.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![3, 4, 9]);
    }
}
