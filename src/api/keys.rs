//! API keys over HTTP, for the studio's keys page (admin only): make one
//! (shown once), list them, revoke one. The same records `clipforge keys`
//! works on; only each key's hash is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use crate::domain::FieldError;
use crate::error_code as codes;
use crate::store::records::{ApiKeyRecord, NewApiKey, Scope};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// Who or what the key is for, 1-100 characters.
    pub name: String,
    /// `jobs:read`, `jobs:write`, `jobs:review`, `accounts`, `admin`; at least one.
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    /// The key itself: shown in this answer only, never again.
    pub key: String,
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<ApiKeyRecord>,
}

/// Every key, with its scopes, use and revocation (never the key itself).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = KeyList)))]
pub async fn list_keys(State(state): State<ApiState>) -> Result<Json<KeyList>, ApiError> {
    let keys = state
        .pipeline
        .records
        .list_api_keys()
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    Ok(Json(KeyList { keys }))
}

/// Makes a key; the answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKeyRequest,
    responses((status = 201, body = NewKey), (status = 422, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<ApiState>,
    Json(req): Json<NewKeyRequest>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let name = req.name.trim();
    let scopes = match (NewApiKey::check_name(name), Scope::parse_list(&req.scopes.join(","))) {
        (Ok(()), Ok(scopes)) => scopes,
        (name, scopes) => {
            // Every problem at once, each beside its field.
            let details = [("name", name.err()), ("scopes", scopes.err())]
                .into_iter()
                .filter_map(|(field, why)| why.map(|why| FieldError::new(field, codes::INVALID_KEY_REQUEST, why)))
                .collect();
            return Err(ApiError::invalid_fields(codes::INVALID_KEY_REQUEST, details));
        }
    };
    let (key, new) = NewApiKey::generate(name, scopes);
    let created = state
        .pipeline
        .records
        .create_api_key(&new)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    tracing::info!(key_id = %created.id, scopes = %Scope::join(&created.scopes), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            key: key.expose_secret().to_string(),
            id: created.id,
            name: created.name,
            scopes: created.scopes.iter().map(|s| s.to_string()).collect(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub id: String,
    pub revoked: bool,
}

/// Revokes a key: it, and every studio session made from it, is refused from
/// the next request on.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<Revoked>, ApiError> {
    let found = state
        .pipeline
        .records
        .revoke_api_key(&id)
        .await
        .map_err(|e| ApiError::unavailable(codes::RECORDS_UNAVAILABLE, e))?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::KEY_NOT_FOUND,
            format!("no API key with id `{}`", crate::domain::echo(&id)),
        ));
    }
    tracing::info!(key_id = %id, "API key revoked");
    Ok(Json(Revoked { id, revoked: true }))
}
