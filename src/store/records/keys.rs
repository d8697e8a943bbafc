//! API keys as the record store keeps them: never the key, only its SHA-256,
//! with a name, scopes, and how much the key was used.
//!
//! A key reads `cfk_<id>_<secret>`: `id` (12 hex characters) names the key in
//! listings, logs and `clipforge keys revoke`; `secret` is 32 random bytes in
//! base64url. The whole key is shown once, when it is made. A plain SHA-256 is
//! enough to store it: the secret has 256 bits of entropy, so there is no
//! password to guess and nothing a slow hash would protect.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Serialize, Serializer};
use sqlx::AssertSqlSafe;

use super::{Records, StoreError, db_run, json, now, parse_time};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::NotifyRequest;

/// What a key may do. `admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read jobs and download their videos.
    JobsRead,
    /// Submit, retry, cancel and revise jobs.
    JobsWrite,
    /// Approve or send back jobs waiting for review, and hand out reviewer links.
    JobsReview,
    /// Connect, list and disconnect TikTok accounts.
    Accounts,
    /// Everything, including `/metrics`.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::JobsRead, Scope::JobsWrite, Scope::JobsReview, Scope::Accounts, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsRead => "jobs:read",
            Scope::JobsWrite => "jobs:write",
            Scope::JobsReview => "jobs:review",
            Scope::Accounts => "accounts",
            Scope::Admin => "admin",
        }
    }

    /// A comma-separated list such as `jobs:read,jobs:write`: at least one
    /// scope, each known, duplicates dropped.
    pub fn parse_list(list: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let scope: Scope = name.parse()?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err(format!("no scope given; one or more of {}, comma-separated", Scope::allowed()));
        }
        Ok(scopes)
    }

    /// The list as it is stored and shown: `jobs:read,jobs:write`.
    pub fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }

    fn allowed() -> String {
        Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{s}`; one of {}", Scope::allowed()))
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A key about to be stored: its hash, never the key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Lowercase hex SHA-256 of the whole key.
    pub key_hash: String,
    /// Where jobs submitted with the key are announced (see [`ApiKeyRecord::notify`]).
    pub notify: Option<NotifyRequest>,
}

/// Longest key name accepted.
pub const MAX_KEY_NAME_CHARS: usize = 100;

impl NewApiKey {
    /// Whether `name` (trimmed) may name a key: 1-100 characters.
    pub fn check_name(name: &str) -> Result<(), String> {
        let n = name.chars().count();
        if n == 0 || n > MAX_KEY_NAME_CHARS {
            return Err(format!("a key's name must be 1-{MAX_KEY_NAME_CHARS} characters; it is {n}"));
        }
        Ok(())
    }

    /// Makes a fresh key: the key itself, to show once, and what to store of it.
    pub fn generate(name: &str, scopes: Vec<Scope>) -> (SecretString, NewApiKey) {
        let mut id = [0u8; 6];
        OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let key = format!("cfk_{id}_{}", random_token(32));
        let record = NewApiKey { key_hash: sha256_hex(&key), id, name: name.to_string(), scopes, notify: None };
        (SecretString::from(key), record)
    }
}

/// A stored key, as listings show it (no hash: it is of no use to anyone reading).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once the key is revoked; a revoked key is refused like an unknown one.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Requests served with the key (those refused for going over its rate limit are not counted).
    pub requests: u64,
    /// Where the jobs submitted with this key are announced when they name no
    /// target of their own; None: the team-wide `[notify]` settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyRequest>,
}

impl ApiKeyRecord {
    /// Whether the key may call a route that needs `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&s| s == scope || s == Scope::Admin)
    }
}

/// API keys, kept as hashes: what the API's guard and `clipforge keys` ask of the store.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new API key: its hash, never the key.
    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRecord, StoreError>;
    /// The key whose SHA-256 is `key_hash`, revoked or not (the caller refuses revoked ones).
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key (a second revocation keeps the first time); false if there is no such key.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError>;
    /// Sets (or, with None, clears) where the key's jobs are announced; false if there is no such key.
    async fn set_api_key_notify(&self, id: &str, notify: Option<&NotifyRequest>) -> Result<bool, StoreError>;
    /// Counts one request served with the key and sets its last_used_at.
    async fn count_api_key_use(&self, id: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl KeyStore for Records {
    async fn create_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO api_keys (id, key_hash, name, scopes, created_at, notify) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {API_KEY_COLUMNS}"
        );
        let row: ApiKeyRow = db_run!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(&key.id)
                .bind(&key.key_hash)
                .bind(&key.name)
                .bind(Scope::join(&key.scopes))
                .bind(now())
                .bind(key.notify.as_ref().map(json))
                .fetch_one(pool)
                .await?
        });
        row.into_record()
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1");
        let row: Option<ApiKeyRow> =
            db_run!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).bind(key_hash).fetch_optional(pool).await?);
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows: Vec<ApiKeyRow> = db_run!(self, pool => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await?);
        rows.into_iter().map(ApiKeyRow::into_record).collect()
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let found = db_run!(self, pool => {
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(found == 1)
    }

    async fn set_api_key_notify(&self, id: &str, notify: Option<&NotifyRequest>) -> Result<bool, StoreError> {
        let found = db_run!(self, pool => {
            sqlx::query("UPDATE api_keys SET notify = $1 WHERE id = $2")
                .bind(notify.map(json))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(found == 1)
    }

    async fn count_api_key_use(&self, id: &str) -> Result<(), StoreError> {
        db_run!(self, pool => {
            sqlx::query("UPDATE api_keys SET requests = requests + 1, last_used_at = $1 WHERE id = $2")
                .bind(now())
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// The key columns, in [`ApiKeyRow`]'s order.
const API_KEY_COLUMNS: &str = "id, name, scopes, created_at, last_used_at, revoked_at, requests, notify";

/// One key row.
#[derive(Debug, sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    scopes: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    requests: i64,
    notify: Option<String>,
}

impl ApiKeyRow {
    fn into_record(self) -> Result<ApiKeyRecord, StoreError> {
        Ok(ApiKeyRecord {
            scopes: Scope::parse_list(&self.scopes).map_err(StoreError::Corrupt)?,
            id: self.id,
            name: self.name,
            created_at: parse_time(&self.created_at)?,
            last_used_at: self.last_used_at.as_deref().map(parse_time).transpose()?,
            revoked_at: self.revoked_at.as_deref().map(parse_time).transpose()?,
            requests: u64::try_from(self.requests).unwrap_or_default(),
            notify: self.notify.as_deref().map(serde_json::from_str).transpose().map_err(super::corrupt)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn scopes_parse_from_a_comma_list_and_name_what_is_allowed() {
        assert_eq!(Scope::parse_list("jobs:read, jobs:write,jobs:read").unwrap(), [Scope::JobsRead, Scope::JobsWrite]);
        let err = Scope::parse_list("jobs:read,jobs:delete").unwrap_err();
        assert!(
            err.contains("jobs:delete") && err.contains("jobs:read, jobs:write, jobs:review, accounts, admin"),
            "{err}"
        );
        assert!(Scope::parse_list(" , ").unwrap_err().contains("no scope"));
        assert_eq!(Scope::join(&[Scope::Accounts, Scope::Admin]), "accounts,admin");
    }

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        let key = |scopes: Vec<Scope>| ApiKeyRecord {
            id: "k".into(),
            name: "n".into(),
            scopes,
            created_at: DateTime::UNIX_EPOCH,
            last_used_at: None,
            revoked_at: None,
            requests: 0,
            notify: None,
        };
        assert!(Scope::ALL.into_iter().all(|s| key(vec![Scope::Admin]).allows(s)));
        let reader = key(vec![Scope::JobsRead]);
        assert!(reader.allows(Scope::JobsRead));
        assert!(!reader.allows(Scope::JobsWrite) && !reader.allows(Scope::Accounts) && !reader.allows(Scope::Admin));
    }

    #[test]
    fn a_generated_key_names_its_id_and_only_its_hash_is_kept() {
        let (key, stored) = NewApiKey::generate("ci", vec![Scope::JobsRead]);
        let key = key.expose_secret();
        let rest = key.strip_prefix(&format!("cfk_{}_", stored.id)).expect("cfk_<id>_<secret>");
        assert_eq!(stored.id.len(), 12);
        assert!(stored.id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(rest.len(), 43, "32 bytes of base64url");
        assert_eq!(stored.key_hash, sha256_hex(key));
        assert!(!format!("{stored:?}").contains(rest), "the record holds no secret");
        assert_ne!(NewApiKey::generate("ci", vec![Scope::JobsRead]).1.id, stored.id);
    }
}
