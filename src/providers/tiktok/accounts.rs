//! Connected TikTok accounts and their tokens.
//!
//! The tokens are kept by the shared [`TokenKeeper`] (sealed at rest,
//! refreshed by one worker at a time, `needs_reconnect` on a refused
//! refresh); TikTok's part is the [`Grantor`] below and what only TikTok has:
//! the connect with Login Kit and the kept creator info.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tracing::info;

use super::api::{CreatorInfo, PROVIDER, TikTokApi};
use crate::crypto::TokenCipher;
use crate::error_code as codes;
use crate::providers::ProviderError;
pub use crate::providers::oauth::needs_reconnect;
use crate::providers::oauth::{Grantor, TokenGrant, TokenKeeper};
use crate::settings::Settings;
use crate::store::records::{AccountRecord, AccountStore, NewAccount};

/// Accounts, tokens and the TikTok calls that need them.
#[derive(Clone)]
pub struct Accounts {
    pub api: TikTokApi,
    records: Arc<dyn AccountStore>,
    tokens: TokenKeeper,
}

#[async_trait]
impl Grantor for TikTokApi {
    fn platform(&self) -> &'static str {
        PROVIDER
    }

    async fn refresh(&self, refresh: &SecretString) -> Result<TokenGrant, ProviderError> {
        TikTokApi::refresh(self, refresh).await
    }

    async fn revoke(&self, access: &SecretString) -> Result<(), ProviderError> {
        TikTokApi::revoke(self, access).await
    }
}

impl Accounts {
    /// `None` when TikTok is not configured.
    pub fn from_settings(s: &Settings, records: Arc<dyn AccountStore>) -> Option<Self> {
        let t = &s.tiktok;
        if !t.enabled() {
            return None;
        }
        let http = crate::providers::http::client(t.timeout());
        let api = TikTokApi::new(
            http,
            &t.authorize_url,
            &t.api_url,
            &t.client_key,
            t.client_secret.clone().expect("validated: a client_key comes with a client_secret"),
            &t.scopes,
        );
        let tokens = TokenKeeper::from_settings(s, Arc::new(api.clone()), records.clone(), t.refresh_margin());
        Some(Self { api, records, tokens })
    }

    /// The token key, for other sealed TikTok secrets (upload URLs).
    pub(crate) fn cipher_ref(&self) -> Result<&TokenCipher, ProviderError> {
        self.tokens.cipher()
    }

    /// Whether tokens can be stored at all (a token key is set).
    pub fn can_store_tokens(&self) -> bool {
        self.tokens.can_store_tokens()
    }

    /// Finishes a connect: exchanges the code, reads the profile, stores the
    /// account with sealed tokens. Refuses before any TikTok call when no token
    /// key is set, so no grant is wasted.
    pub async fn connect(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<AccountRecord, ProviderError> {
        self.tokens.cipher()?;
        let grant = self.api.exchange_code(code, redirect_uri, verifier).await?;
        let profile = self.api.user_info(&grant.access_token).await?;
        if profile.open_id != grant.open_id {
            return Err(ProviderError::new(
                PROVIDER,
                codes::UNEXPECTED_RESPONSE,
                "user info names another open_id",
                false,
            ));
        }
        let account = NewAccount {
            platform: PROVIDER.into(),
            tokens: self.tokens.seal(&profile.open_id, &grant)?,
            open_id: profile.open_id,
            display_name: profile.display_name,
            avatar_url: profile.avatar_url,
            scopes: grant.scope.clone(),
        };
        let stored = self.records.upsert_account(&account).await.map_err(store_error)?;
        info!(account = %stored.id, open_id = %stored.open_id, "TikTok account connected");
        Ok(stored)
    }

    /// A usable access token for `account`; see [`TokenKeeper::access_token`].
    pub async fn access_token(&self, account: &str, stale: Option<i64>) -> Result<(SecretString, i64), ProviderError> {
        self.tokens.access_token(account, stale).await
    }

    /// Revokes the grant at TikTok (best effort) and deletes the tokens.
    pub async fn disconnect(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        self.tokens.disconnect(account).await
    }

    /// The creator info kept on the account and when TikTok gave it, if any
    /// (and readable: a row written by another version is asked again).
    pub async fn kept_creator_info(&self, id: &str) -> Result<Option<(CreatorInfo, DateTime<Utc>)>, ProviderError> {
        let kept = self.records.creator_info(id).await.map_err(store_error)?;
        Ok(kept.and_then(|(json, at)| serde_json::from_str(&json).ok().map(|info| (info, at))))
    }

    /// Keeps `info`, fetched at `at`, on the account for the next jobs.
    pub async fn keep_creator_info(
        &self,
        id: &str,
        info: &CreatorInfo,
        at: DateTime<Utc>,
    ) -> Result<(), ProviderError> {
        let json = serde_json::to_string(info).expect("serialises");
        self.records.save_creator_info(id, &json, at).await.map_err(store_error)
    }

    /// A TikTok account, by our id or its open_id.
    pub async fn load(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        self.tokens.load(account).await
    }
}

pub(crate) fn store_error(e: crate::store::records::StoreError) -> ProviderError {
    ProviderError::new(PROVIDER, codes::RECORD_STORE_ERROR, e.to_string(), true)
}
