//! Handlers for a tenant's knowledge-base documents. The store is where a document lives, so every
//! process (an API replica, a worker elsewhere) can build its own index from it; this process's index,
//! when it has one (`--data-dir`), is brought up to date at once on upload and delete, and before a
//! search when another process changed the documents.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Tenant;
use super::doc::ErrorBody;
use super::error::ApiError;
use super::AppState;
use crate::kb::{document_source, source_document, Hit, Ingested, KbError, Knowledge};
use crate::store::{KbDocumentInfo, KbPut};

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    pub items: Vec<KbDocumentInfo>,
}

/// A document with its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentText {
    #[serde(flatten)]
    pub info: KbDocumentInfo,
    pub body: String,
}

/// What a put did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPut {
    pub document: KbDocumentInfo,
    /// `added`, `replaced` or `unchanged`.
    pub status: String,
    /// Whether this server indexed it (it has a knowledge base).
    pub indexed: bool,
    /// Chunks indexed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentDeleted {
    pub deleted: String,
    pub indexed: bool,
}

/// A chunk found, with the document it came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    #[serde(flatten)]
    pub hit: Hit,
    /// The uploaded document's name; null for a chunk of a file given on the command line.
    pub document: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHits {
    pub items: Vec<SearchHit>,
}

/// The formats the chunker reads, by the name's extension.
const FORMATS: &[&str] = &["md", "txt", "csv", "jsonl"];
/// The store's column holds this many characters.
const MAX_NAME_CHARS: usize = 255;
const DEFAULT_TOP: usize = 5;
const MAX_TOP: usize = 50;
const NOT_INDEXED: &str =
    "this server has no knowledge base (--data-dir): the documents are stored, \
                           and indexed by the processes that have one";

/// A document's name as a route gives it, checked; and its format.
fn document_name(
    path: Result<Path<String>, PathRejection>,
) -> Result<(String, &'static str), ApiError> {
    let Path(name) = path.map_err(|r| ApiError::bad_request(format!("name: {}", r.body_text())))?;
    let format = check_name(&name).map_err(|m| ApiError::bad_request(format!("name: {m}")))?;
    Ok((name, format))
}

/// The format of a well-formed name. Names are keys, not paths: nothing that a file system or a URL
/// would read as a step to somewhere else.
pub(crate) fn check_name(name: &str) -> Result<&'static str, String> {
    if name.trim().is_empty() {
        return Err("empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!("{chars} characters, at most {MAX_NAME_CHARS}"));
    }
    if name.contains(['/', '\\']) {
        return Err(format!("{name:?} contains a path separator"));
    }
    if name.contains("..") {
        return Err(format!("{name:?} contains \"..\""));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} contains a control character"));
    }
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return Err(format!("{name:?} has no extension (md, txt, csv, jsonl)")),
    };
    FORMATS
        .iter()
        .find(|f| **f == ext)
        .copied()
        .ok_or_else(|| format!("unsupported extension .{ext} (md, txt, csv, jsonl)"))
}

/// The document's text, checked as the chunker will read it: a CSV or JSON-lines file with a bad line
/// is refused here, naming the line, rather than stored and failing in every process that indexes it.
fn check_body(name: &str, format: &str, body: &Bytes) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("body: not UTF-8: {e}")))?;
    check_text(name, format, text).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    Ok(text.to_string())
}

/// A CSV or JSON-lines document's lines, as the chunker reads them.
pub(crate) fn check_text(name: &str, format: &str, text: &str) -> Result<(), String> {
    if matches!(format, "csv" | "jsonl") {
        crate::kb::chunk::chunk_file(std::path::Path::new(name), text, usize::MAX)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn kb_unavailable(tenant: &str, e: KbError) -> ApiError {
    tracing::error!(%tenant, "knowledge base: {e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the knowledge base is unavailable",
    )
}

/// Brings this process's index of the tenant's documents up to date with the store.
async fn sync(state: &AppState, kb: &Knowledge, tenant: &str) -> Result<Vec<Ingested>, ApiError> {
    let store = &state.ctx.store;
    kb.sync(tenant, || store.kb_document_bodies(tenant))
        .await
        .map_err(|e| {
            tracing::error!(%tenant, "indexing the knowledge-base documents: {e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the change is stored; indexing it in this server failed (it is retried on the \
                 next upload or search)",
            )
        })
}

/// The tenant's knowledge-base documents
#[utoipa::path(get, path = "/v1/kb/documents", tag = "knowledge base",
    security(("bearer" = [])),
    responses((status = 200, description = "every document, without its text", body = DocumentList)))]
pub async fn documents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<DocumentList>, ApiError> {
    let items = state.ctx.store.kb_documents(&tenant).await?;
    Ok(Json(DocumentList { items }))
}

/// One document, with its text
#[utoipa::path(get, path = "/v1/kb/documents/{name}", tag = "knowledge base",
    params(("name" = String, Path, description = "its name, with an extension: md, txt, csv or jsonl")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the document", body = DocumentText),
        (status = 400, description = "a name that is not a document name", body = ErrorBody),
        (status = 404, description = "no such document", body = ErrorBody),
    ))]
pub async fn document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DocumentText>, ApiError> {
    let (name, _) = document_name(path)?;
    let (info, body) = state
        .ctx
        .store
        .kb_document(&tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("document {name}")))?;
    Ok(Json(DocumentText { info, body }))
}

/// Add or replace a document
///
/// Stored for every process; indexed at once by a server that has a knowledge base, and by the
/// others on their next search.
#[utoipa::path(put, path = "/v1/kb/documents/{name}", tag = "knowledge base",
    params(("name" = String, Path, description = "its name, with an extension: md, txt, csv or jsonl")),
    request_body(content = String, content_type = "text/plain",
        description = "the document's text (markdown, text, CSV with a header, or JSON lines)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "replaced or unchanged", body = DocumentPut),
        (status = 201, description = "added", body = DocumentPut),
        (status = 400, description = "a bad name, or a body that is not UTF-8 or does not parse", body = ErrorBody),
        (status = 413, description = "over 16 MiB", body = ErrorBody),
    ))]
pub async fn put_document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DocumentPut>), ApiError> {
    let (name, format) = document_name(path)?;
    let body = body.map_err(|r| ApiError::new(r.status(), format!("body: {}", r.body_text())))?;
    let text = check_body(&name, format, &body)?;
    let (info, put) = state
        .ctx
        .store
        .put_kb_document(&tenant, &name, &text)
        .await?;
    let status = if put == KbPut::Added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut answer = DocumentPut {
        document: info,
        status: put.as_str().into(),
        indexed: false,
        chunks: None,
        reason: None,
    };
    match state.ctx.tenants.kb() {
        None => answer.reason = Some(NOT_INDEXED.into()),
        Some(kb) => {
            // Synced even when unchanged: an earlier upload whose indexing failed is indexed now.
            let report = sync(&state, kb, &tenant).await?;
            let source = document_source(&name);
            let chunks = report
                .iter()
                .find(|r| r.source == source)
                .map_or(0, |r| r.chunks);
            answer.indexed = true;
            answer.chunks = Some(chunks);
        }
    }
    Ok((status, Json(answer)))
}

/// Delete a document
#[utoipa::path(delete, path = "/v1/kb/documents/{name}", tag = "knowledge base",
    params(("name" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "deleted", body = DocumentDeleted),
        (status = 400, description = "a name that is not a document name", body = ErrorBody),
        (status = 404, description = "no such document", body = ErrorBody),
    ))]
pub async fn delete_document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DocumentDeleted>, ApiError> {
    let (name, _) = document_name(path)?;
    if !state.ctx.store.delete_kb_document(&tenant, &name).await? {
        return Err(ApiError::not_found(format!("document {name}")));
    }
    let indexed = match state.ctx.tenants.kb() {
        Some(kb) => {
            sync(&state, kb, &tenant).await?;
            true
        }
        None => false,
    };
    Ok(Json(DocumentDeleted {
        deleted: name,
        indexed,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for (required).
    q: Option<String>,
    /// Chunks to return, 1 to 50 (5); parsed here, so that a bad value is an error naming it.
    top: Option<String>,
}

/// Search the tenant's knowledge base
#[utoipa::path(get, path = "/v1/kb/search", tag = "knowledge base", params(SearchQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the chunks found, best first", body = SearchHits),
        (status = 400, description = "no query, or a bad top", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchHits>, ApiError> {
    let Query(query) = query?;
    let q = match query.q.as_deref().map(str::trim) {
        None => return Err(ApiError::bad_request("q: required")),
        Some("") => return Err(ApiError::bad_request("q: empty")),
        Some(q) => q.to_string(),
    };
    let top = match &query.top {
        None => DEFAULT_TOP,
        Some(t) => t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("top: {t:?} is not a number from 1 to {MAX_TOP}"))
            })?,
    };
    // An empty list would read as "nothing matches"; this server cannot tell.
    let Some(kb) = state.ctx.tenants.kb() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_INDEXED));
    };
    // Another process may have changed the documents; the listing (no texts) tells, cheaply.
    let stored: Vec<(String, String)> = state
        .ctx
        .store
        .kb_documents(&tenant)
        .await?
        .into_iter()
        .map(|d| (d.name, d.digest))
        .collect();
    let current = kb
        .documents_match(&tenant, &stored)
        .await
        .map_err(|e| kb_unavailable(&tenant, e))?;
    if !current {
        sync(&state, kb, &tenant).await?;
    }
    let hits = kb
        .search(&tenant, &q, top)
        .await
        .map_err(|e| kb_unavailable(&tenant, e))?;
    let items = hits
        .into_iter()
        .map(|hit| SearchHit {
            document: source_document(&hit.source).map(str::to_string),
            hit,
        })
        .collect();
    Ok(Json(SearchHits { items }))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_keys_with_a_known_format() {
        assert_eq!(check_name("价格表.CSV"), Ok("csv"));
        assert_eq!(check_name("faq.jsonl"), Ok("jsonl"));
        for bad in [
            "", " ", "a/b.md", "a\\b.md", "..md", "a..b.md", "notes", ".md", "x.pdf", "a\n.md",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_name(&format!("{}.md", "长".repeat(252))).is_ok());
        assert!(check_name(&format!("{}.md", "长".repeat(253))).is_err());
    }
}
