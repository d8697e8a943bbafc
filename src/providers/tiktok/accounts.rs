//! Connected TikTok accounts and their tokens.
//!
//! Tokens are sealed with the operator's key before they reach the record
//! store and opened only to make a call. An access token lives 24 h; it is
//! refreshed when less than the margin is left, by one worker at a time per
//! account (a lock in the record store), and the rotated refresh token is
//! stored in the same statement that releases the lock. A refused refresh
//! (`invalid_grant`) marks the account `needs_reconnect`: its jobs wait, they
//! do not fail.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tracing::{info, warn};

use super::api::{CreatorInfo, PROVIDER, TikTokApi, TokenGrant};
use crate::crypto::{CryptoError, TokenCipher};
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::settings::Settings;
use crate::store::records::{AccountRecord, AccountStatus, AccountStore, NewAccount, SealedTokens};

/// How long a worker waits for another's refresh before giving up (retryably).
const REFRESH_WAIT: Duration = Duration::from_secs(60);

/// Accounts, tokens and the TikTok calls that need them.
#[derive(Clone)]
pub struct Accounts {
    pub api: TikTokApi,
    records: Arc<dyn AccountStore>,
    cipher: Option<TokenCipher>,
    refresh_margin: Duration,
    lock_ttl: Duration,
    /// Names this process in lock holders (each refresh adds its own id, so
    /// two workers of one process never share a lock).
    process: String,
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
        let cipher = t.token_key().map(|k| TokenCipher::from_base64(k).expect("validated in settings"));
        Some(Self {
            api,
            records,
            cipher,
            refresh_margin: t.refresh_margin(),
            lock_ttl: t.refresh_lock(),
            process: format!("{}:{}", gethostname::gethostname().to_string_lossy(), std::process::id()),
        })
    }

    fn cipher(&self) -> Result<&TokenCipher, ProviderError> {
        self.cipher.as_ref().ok_or_else(|| crypto_error(CryptoError::NoKey))
    }

    /// The token key, for other sealed TikTok secrets (upload URLs).
    pub(crate) fn cipher_ref(&self) -> Result<&TokenCipher, ProviderError> {
        self.cipher()
    }

    /// Whether tokens can be stored at all (a token key is set).
    pub fn can_store_tokens(&self) -> bool {
        self.cipher.is_some()
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
        let cipher = self.cipher()?;
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
            open_id: profile.open_id.clone(),
            display_name: profile.display_name,
            avatar_url: profile.avatar_url,
            scopes: grant.scope.clone(),
            tokens: seal(cipher, &profile.open_id, &grant),
        };
        let stored = self.records.upsert_account(&account).await.map_err(store_error)?;
        info!(account = %stored.id, open_id = %stored.open_id, "TikTok account connected");
        Ok(stored)
    }

    /// A usable access token for `account`, refreshed first when it is close
    /// to expiry. `stale` is a token version the caller saw refused by TikTok:
    /// such a token is refreshed whatever its expiry says.
    pub async fn access_token(&self, account: &str, stale: Option<i64>) -> Result<(SecretString, i64), ProviderError> {
        let cipher = self.cipher()?;
        let started = tokio::time::Instant::now();
        loop {
            let acct = self.load(account).await?;
            let tokens = usable(&acct)?;
            let fresh = is_fresh(tokens.access_expires_at, Utc::now(), self.refresh_margin);
            if fresh && Some(acct.token_version) != stale {
                return Ok((open(cipher, &acct, "access", &tokens.access)?, acct.token_version));
            }
            let owner = format!("{}:{}", self.process, uuid::Uuid::now_v7());
            if self.records.lock_refresh(&acct.id, &owner, self.lock_ttl).await.map_err(store_error)? {
                return self.refresh_locked(cipher, &acct.id, acct.token_version, &owner).await;
            }
            // Another worker is refreshing: its result will show as a new version.
            if started.elapsed() > REFRESH_WAIT {
                return Err(ProviderError::new(
                    PROVIDER,
                    codes::TOKEN_REFRESH_STALLED,
                    "another worker held the account's refresh lock for too long",
                    true,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Refreshes while holding the lock; `seen` is the version that needed it.
    async fn refresh_locked(
        &self,
        cipher: &TokenCipher,
        id: &str,
        seen: i64,
        owner: &str,
    ) -> Result<(SecretString, i64), ProviderError> {
        let acct = self.load(id).await?;
        let tokens = match usable(&acct) {
            Ok(t) => t.clone(),
            Err(e) => {
                self.release(id, owner).await;
                return Err(e);
            }
        };
        if acct.token_version != seen {
            // Someone refreshed between our read and our lock.
            self.release(id, owner).await;
            return Ok((open(cipher, &acct, "access", &tokens.access)?, acct.token_version));
        }
        let refresh = open(cipher, &acct, "refresh", &tokens.refresh)?;
        match self.api.refresh(&refresh).await {
            Ok(grant) => {
                let sealed = seal(cipher, &acct.open_id, &grant);
                if !self.records.finish_refresh(id, owner, Some(&sealed)).await.map_err(store_error)? {
                    warn!(account = %id, "refresh lock lapsed before the new tokens were stored");
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::TOKEN_REFRESH_LOST,
                        "the refresh took longer than the refresh lock; raise tiktok.refresh_lock_secs",
                        true,
                    ));
                }
                info!(account = %id, "access token refreshed");
                Ok((grant.access_token, acct.token_version + 1))
            }
            Err(e) if e.code == codes::INVALID_GRANT => {
                self.records.set_account_status(id, AccountStatus::NeedsReconnect).await.map_err(store_error)?;
                self.release(id, owner).await;
                warn!(account = %id, "TikTok refused the refresh token; the account needs to be connected again");
                Err(needs_reconnect(&acct))
            }
            Err(e) => {
                self.release(id, owner).await;
                Err(e)
            }
        }
    }

    async fn release(&self, id: &str, owner: &str) {
        if let Err(e) = self.records.finish_refresh(id, owner, None).await {
            warn!(account = %id, error = %e, "could not release the refresh lock; it lapses on its own");
        }
    }

    /// Revokes the grant at TikTok (best effort: the tokens are deleted here
    /// whatever TikTok answers) and deletes the tokens.
    pub async fn disconnect(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        let acct = self.load(account).await?;
        if let (Some(tokens), Ok(cipher)) = (&acct.tokens, self.cipher()) {
            match open(cipher, &acct, "access", &tokens.access) {
                Ok(access) => {
                    if let Err(e) = self.api.revoke(&access).await {
                        warn!(account = %acct.id, code = e.code.as_str(), "TikTok did not confirm the revocation; tokens deleted anyway");
                    }
                }
                Err(e) => warn!(account = %acct.id, error = %e.message, "token could not be opened to revoke it"),
            }
        }
        self.records.forget_tokens(&acct.id).await.map_err(store_error)?;
        info!(account = %acct.id, "TikTok account disconnected; tokens deleted");
        self.load(&acct.id).await
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

    pub async fn load(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        self.records.account(account).await.map_err(store_error)?.ok_or_else(|| {
            ProviderError::new(
                PROVIDER,
                codes::ACCOUNT_UNKNOWN,
                format!("no TikTok account `{account}` is connected; see `clipforge accounts list`"),
                false,
            )
        })
    }
}

/// Whether an access token that expires at `expires_at` is still used as it
/// is at `now`: only while more than `margin` is left; at the margin it is
/// refreshed.
fn is_fresh(expires_at: DateTime<Utc>, now: DateTime<Utc>, margin: Duration) -> bool {
    expires_at - now > chrono::Duration::from_std(margin).unwrap_or_default()
}

/// The tokens of an account that can publish.
fn usable(acct: &AccountRecord) -> Result<&SealedTokens, ProviderError> {
    match (acct.status, &acct.tokens) {
        (AccountStatus::Connected, Some(t)) => Ok(t),
        (AccountStatus::NeedsReconnect, _) => Err(needs_reconnect(acct)),
        _ => Err(ProviderError::new(
            PROVIDER,
            codes::ACCOUNT_DISCONNECTED,
            format!("TikTok account {} was disconnected; connect it again to publish", acct.id),
            false,
        )),
    }
}

/// The error whose jobs wait for the operator, with what to do.
pub fn needs_reconnect(acct: &AccountRecord) -> ProviderError {
    ProviderError::new(
        PROVIDER,
        codes::NEEDS_RECONNECT,
        format!(
            "TikTok no longer accepts the grant of account {} ({}); connect it again with `clipforge accounts \
             connect` or GET /v1/accounts/tiktok/connect — waiting jobs then continue",
            acct.id, acct.display_name
        ),
        true,
    )
}

fn seal(cipher: &TokenCipher, open_id: &str, g: &TokenGrant) -> SealedTokens {
    use secrecy::ExposeSecret;
    let now = Utc::now();
    SealedTokens {
        access: cipher.seal(g.access_token.expose_secret(), &context(open_id, "access")),
        refresh: cipher.seal(g.refresh_token.expose_secret(), &context(open_id, "refresh")),
        access_expires_at: now + chrono::Duration::from_std(g.expires_in).unwrap_or_default(),
        refresh_expires_at: now + chrono::Duration::from_std(g.refresh_expires_in).unwrap_or_default(),
    }
}

fn open(cipher: &TokenCipher, acct: &AccountRecord, which: &str, sealed: &str) -> Result<SecretString, ProviderError> {
    cipher.open(sealed, &context(&acct.open_id, which)).map_err(crypto_error)
}

/// Binds a sealed token to its account and column.
fn context(open_id: &str, which: &str) -> String {
    format!("tiktok:{open_id}:{which}")
}

fn crypto_error(e: CryptoError) -> ProviderError {
    let code = match e {
        CryptoError::NoKey => codes::TOKEN_KEY_MISSING,
        CryptoError::BadKey => codes::TOKEN_KEY_INVALID,
        CryptoError::Open => codes::TOKEN_UNREADABLE,
    };
    ProviderError::new(PROVIDER, code, e.to_string(), false)
}

pub(crate) fn store_error(e: crate::store::records::StoreError) -> ProviderError {
    ProviderError::new(PROVIDER, codes::RECORD_STORE_ERROR, e.to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_from_the_margin_before_its_expiry() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let margin = Duration::from_secs(300);
        let expiring_in = |s: i64| now + chrono::Duration::seconds(s);
        assert!(is_fresh(expiring_in(86_400), now, margin), "a new token is used as it is");
        assert!(is_fresh(expiring_in(301), now, margin), "one second outside the margin");
        assert!(!is_fresh(expiring_in(300), now, margin), "at the margin it is refreshed");
        assert!(!is_fresh(expiring_in(10), now, margin));
        assert!(!is_fresh(expiring_in(-60), now, margin), "an expired token");
        assert!(is_fresh(expiring_in(1), now, Duration::ZERO), "no margin: used to the last second");
    }
}
