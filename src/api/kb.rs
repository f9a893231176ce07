//! Handlers for a tenant's knowledge-base documents. The store is where a document lives, so every
//! process (an API replica, a worker elsewhere) can build its own index from it; this process's index,
//! when it has one (`--data-dir`), is brought up to date at once on upload and delete, and before a
//! search when another process changed the documents.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::error::ApiError;
use super::AppState;
use crate::kb::{document_source, source_document, Ingested, KbError, Knowledge};
use crate::store::KbPut;

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

/// GET /v1/kb/documents: the tenant's documents, without their texts.
pub async fn documents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let items = state.ctx.store.kb_documents(&tenant).await?;
    Ok(Json(json!({"items": items})))
}

/// GET /v1/kb/documents/{name}: one document with its text.
pub async fn document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (name, _) = document_name(path)?;
    let (info, body) = state
        .ctx
        .store
        .kb_document(&tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("document {name}")))?;
    let mut doc = serde_json::to_value(info).unwrap_or_default();
    doc["body"] = Value::String(body);
    Ok(Json(doc))
}

/// PUT /v1/kb/documents/{name}: stores the document (replacing one of that name) and indexes it here.
pub async fn put_document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let mut answer = json!({"document": info, "status": put.as_str()});
    match state.ctx.tenants.kb() {
        None => {
            answer["indexed"] = json!(false);
            answer["reason"] = json!(NOT_INDEXED);
        }
        Some(kb) => {
            // Synced even when unchanged: an earlier upload whose indexing failed is indexed now.
            let report = sync(&state, kb, &tenant).await?;
            let source = document_source(&name);
            let chunks = report
                .iter()
                .find(|r| r.source == source)
                .map_or(0, |r| r.chunks);
            answer["indexed"] = json!(true);
            answer["chunks"] = json!(chunks);
        }
    }
    Ok((status, Json(answer)))
}

/// DELETE /v1/kb/documents/{name}: removes the document and its chunks.
pub async fn delete_document(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"deleted": name, "indexed": indexed})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    /// Parsed here, so that a bad value is an error naming the field.
    top: Option<String>,
}

/// GET /v1/kb/search?q=…&top=…: the tenant's best-matching chunks.
pub async fn search(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = hits
        .into_iter()
        .map(|h| {
            let document = source_document(&h.source).map(str::to_string);
            let mut v = serde_json::to_value(h).unwrap_or_default();
            v["document"] = json!(document);
            v
        })
        .collect();
    Ok(Json(json!({"items": items})))
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
