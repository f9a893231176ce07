//! Bearer tokens. Only a token's SHA-256 is stored; a token speaks for one tenant, and every handler
//! takes the tenant from the token, never from the request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::error::ApiError;
use super::AppState;
use crate::store::Principal;

/// A caller authenticated by a tenant token.
pub struct Tenant(pub String);

/// A caller authenticated by an admin token.
pub struct Admin;

async fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>",
            )
        })?;
    state
        .ctx
        .store
        .principal(token)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or revoked token"))
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state).await?;
        if p.admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "an admin token manages tenants; use a tenant token for tenant data",
            ));
        }
        Ok(Tenant(p.tenant))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if principal(parts, state).await?.admin {
            Ok(Admin)
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this route needs an admin token",
            ))
        }
    }
}

/// A new random token: `hx_` and 32 random bytes in hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hx_{}", hex::encode(bytes))
}
