//! Every API error is JSON — `{"error": "…"}` with the status that fits — including the rejections
//! axum produces for malformed JSON, wrong content types and oversized bodies.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Also what another tenant's resource looks like: it does not exist for this token.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{} not found", what.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(super::doc::ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!("store: {e}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> ApiError {
        tracing::error!("queue: {e}");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the queue is unavailable")
    }
}

impl From<crate::tenant::TenantError> for ApiError {
    fn from(e: crate::tenant::TenantError) -> ApiError {
        match e {
            crate::tenant::TenantError::Store(e) => e.into(),
            e @ crate::tenant::TenantError::Kb { .. } => {
                tracing::error!("{e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the tenant's knowledge base is unavailable",
                )
            }
            e => {
                tracing::error!("{e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the tenant's stored configuration does not build; see the server log",
                )
            }
        }
    }
}

impl From<crate::tenant::change::ChangeError> for ApiError {
    fn from(e: crate::tenant::change::ChangeError) -> ApiError {
        use crate::tenant::change::ChangeError;
        match e {
            ChangeError::Invalid(message) => ApiError::bad_request(message),
            ChangeError::NoAgent(name) => ApiError::not_found(format!("agent {name:?}")),
            ChangeError::Tenant(e) => e.into(),
            ChangeError::Store(e) => e.into(),
        }
    }
}
