use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use crate::http::{ApiError, BearerAuth, RequestId, Text};

/// Organization API keys (owners and admins).
pub struct ApiKeysApi;

/// A key to create.
#[derive(Object)]
struct CreateKeyRequest {
    /// What the key is for (1–100 characters, trimmed).
    #[oai(validator(min_length = 1, max_length = 100))]
    name: Text,
}

/// The new key. `key` is shown this once; only its hash is kept.
#[derive(Object)]
struct CreatedKeyResponse {
    /// The key's id, for `DELETE /v1/api-keys/{id}`.
    id: Uuid,
    /// `agk_<prefix>_<secret>`: use it as `Authorization: Bearer <key>`.
    key: String,
    /// The visible part, to recognise the key later.
    prefix: String,
}

/// A key as listed (never its secret). Fields without a value are left out, never `null`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct KeyView {
    /// The key's id.
    id: Uuid,
    /// What the key is for, as given at creation.
    name: String,
    /// The visible part of the key (`agk_<prefix>_…`), to recognise it.
    prefix: String,
    /// When the key was created.
    created_at: DateTime<Utc>,
    /// When the key was last used, at most a minute stale; absent until its first use.
    last_used_at: Option<DateTime<Utc>>,
    /// When the key was revoked, after which it fails; absent while it works.
    revoked_at: Option<DateTime<Utc>>,
}

/// The organization's keys, newest first.
#[derive(Object)]
struct KeyList {
    /// Every key of the organization, revoked ones included, newest first.
    keys: Vec<KeyView>,
}

#[derive(ApiResponse)]
enum KeyCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CreatedKeyResponse>),
}

#[derive(ApiResponse)]
enum KeyRevoked {
    /// Revoked: the key fails from now on, on every node.
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key
    ///
    /// For the caller's organization (owners and admins). The answer shows the key this once;
    /// only its hash is kept.
    #[oai(path = "/api-keys", method = "post", operation_id = "createApiKey")]
    async fn create(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        body: Json<CreateKeyRequest>,
    ) -> Result<KeyCreated, ApiError> {
        let created = state
            .identity
            .create_api_key(&auth.0, &body.name, request_id.for_events())
            .await?;
        Ok(KeyCreated::Created(Json(CreatedKeyResponse {
            id: created.key_id,
            key: created.key,
            prefix: created.prefix,
        })))
    }

    /// List the organization's API keys
    ///
    /// Every key, revoked ones included, newest first, never their secrets (owners and admins).
    #[oai(path = "/api-keys", method = "get", operation_id = "listApiKeys")]
    async fn list(&self, state: Data<&AppState>, auth: BearerAuth) -> Result<Json<KeyList>, ApiError> {
        let keys = state.identity.list_api_keys(&auth.0).await?;
        let keys = keys
            .into_iter()
            .map(|key| KeyView {
                id: key.key_id,
                name: key.name,
                prefix: key.prefix,
                created_at: key.created_at,
                last_used_at: key.last_used_at,
                revoked_at: key.revoked_at,
            })
            .collect();
        Ok(Json(KeyList { keys }))
    }

    /// Revoke an API key
    ///
    /// A key of the caller's organization (owners and admins); from the answer on, it fails on
    /// every node. Revoking it again answers 409 `api_key_already_revoked`.
    #[oai(path = "/api-keys/:id", method = "delete", operation_id = "revokeApiKey")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
        /// The key's id.
        id: Path<Uuid>,
    ) -> Result<KeyRevoked, ApiError> {
        state
            .identity
            .revoke_api_key(&auth.0, id.0, request_id.for_events())
            .await?;
        Ok(KeyRevoked::Revoked)
    }
}
