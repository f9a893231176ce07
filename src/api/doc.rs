//! The OpenAPI document, generated from the code: each handler's `#[utoipa::path]` and the types it
//! answers with. The router registers every route through [`utoipa_axum::routes!`], so a route cannot
//! be served without being described, nor described without being served.

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::ToSchema;

/// Every error, whatever its status: `{"error": "…"}`, naming the field or resource at fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "huixi (会析) API",
        description = "Re-analysis on demand, analysis results and tenant settings for the CRM's \
                       admin UI, message ingest, and the deployment's admin routes. Every /v1 route \
                       is scoped to the tenant of its bearer token: another tenant's resources \
                       answer 404.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// What every route may answer besides its own statuses, said once here rather than on each
/// handler (applied after the routes are collected, so it sees them all): a request that outlives its deadline (408), a store or queue that does not answer
/// (503), and, behind a token, a missing or wrong one (401, 403).
struct Common;

impl utoipa::Modify for Common {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a tenant token for /v1 routes, an admin token for /admin routes \
                         (huixi token create)",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::content::ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                if secured {
                    add("401", "no bearer token, or an unknown or revoked one");
                    add(
                        "403",
                        "a token of the other kind (admin on a tenant route, or the reverse)",
                    );
                }
                add(
                    "408",
                    "the request, body included, took longer than its deadline",
                );
                add("503", "the store or the queue does not answer");
            }
        }
    }
}

/// The document as `/openapi.json` serves it, built once from the routes.
pub fn document() -> &'static str {
    static DOC: LazyLock<String> = LazyLock::new(|| {
        let (_, mut doc) = super::routes_described().split_for_parts();
        utoipa::Modify::modify(&Common, &mut doc);
        doc.to_pretty_json()
            .unwrap_or_else(|e| format!(r#"{{"error": "the document does not serialize: {e}"}}"#))
    });
    &DOC
}
