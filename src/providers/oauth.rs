//! Connected accounts' tokens, for every platform (TikTok, YouTube,
//! Instagram): sealed with the operator's key before they reach the record
//! store, opened only to make a call, refreshed when less than the margin is
//! left, by one worker at a time per account (a lock in the record store),
//! with the new tokens stored in the same statement that releases the lock.
//! A refused refresh (`invalid_grant`) marks the account `needs_reconnect`:
//! its jobs wait, they do not fail.
//!
//! What differs per platform — how a token is refreshed and revoked — is the
//! [`Grantor`] each provider module implements.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

use crate::crypto::{CryptoError, TokenCipher};
use crate::error_code as codes;
use crate::providers::ProviderError;
use crate::store::records::{AccountRecord, AccountStatus, AccountStore, SealedTokens};

/// How long a worker waits for another's refresh before giving up (retryably).
const REFRESH_WAIT: Duration = Duration::from_secs(60);

/// What a token grant (a code exchange or a refresh) returns.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: SecretString,
    /// What refreshes it. Instagram refreshes a long-lived token with itself,
    /// so there it is the access token again.
    pub refresh_token: SecretString,
    pub expires_in: Duration,
    pub refresh_expires_in: Duration,
    /// The platform's id of the user, where the grant names it.
    pub open_id: String,
    pub scope: String,
}

/// How one platform refreshes and revokes a grant.
#[async_trait]
pub trait Grantor: Send + Sync + 'static {
    /// `tiktok`, `youtube` or `instagram`: the accounts' `platform` and the
    /// provider named in errors.
    fn platform(&self) -> &'static str;
    /// A new grant from the stored refresh token. A refused refresh token
    /// must come back with the code `invalid_grant`.
    async fn refresh(&self, refresh: &SecretString) -> Result<TokenGrant, ProviderError>;
    /// Revokes the grant at the platform (best effort for the caller).
    async fn revoke(&self, access: &SecretString) -> Result<(), ProviderError>;
}

/// The sealed tokens of one platform's accounts.
#[derive(Clone)]
pub struct TokenKeeper {
    grantor: Arc<dyn Grantor>,
    records: Arc<dyn AccountStore>,
    cipher: Option<TokenCipher>,
    refresh_margin: Duration,
    lock_ttl: Duration,
    /// Names this process in lock holders (each refresh adds its own id, so
    /// two workers of one process never share a lock).
    process: String,
}

impl TokenKeeper {
    pub fn new(
        grantor: Arc<dyn Grantor>,
        records: Arc<dyn AccountStore>,
        cipher: Option<TokenCipher>,
        refresh_margin: Duration,
        lock_ttl: Duration,
    ) -> Self {
        Self {
            grantor,
            records,
            cipher,
            refresh_margin,
            lock_ttl,
            process: format!("{}:{}", gethostname::gethostname().to_string_lossy(), std::process::id()),
        }
    }

    /// The keeper of one platform's tokens with the operator's settings:
    /// sealed with `tiktok.token_key` (the one token key), refreshed
    /// `refresh_margin` before expiry, under `tiktok.refresh_lock_secs`.
    pub fn from_settings(
        s: &crate::settings::Settings,
        grantor: Arc<dyn Grantor>,
        records: Arc<dyn AccountStore>,
        refresh_margin: Duration,
    ) -> Self {
        let cipher = s.tiktok.token_key().map(|k| TokenCipher::from_base64(k).expect("validated in settings"));
        Self::new(grantor, records, cipher, refresh_margin, s.tiktok.refresh_lock())
    }

    fn provider(&self) -> &'static str {
        self.grantor.platform()
    }

    /// Runs `call` with the account's access token; once more with a
    /// refreshed one when the platform says the token is no good.
    pub async fn with_token<T, F, Fut>(&self, account: &str, call: F) -> Result<T, ProviderError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let (token, version) = self.access_token(account, None).await?;
        match call(token).await {
            Err(e) if e.code == codes::ACCESS_TOKEN_INVALID => {
                let (token, _) = self.access_token(account, Some(version)).await?;
                call(token).await
            }
            other => other,
        }
    }

    pub fn cipher(&self) -> Result<&TokenCipher, ProviderError> {
        self.cipher.as_ref().ok_or_else(|| crypto_error(self.provider(), CryptoError::NoKey))
    }

    /// Whether tokens can be stored at all (a token key is set).
    pub fn can_store_tokens(&self) -> bool {
        self.cipher.is_some()
    }

    /// The tokens of `grant`, sealed for the account `open_id`.
    pub fn seal(&self, open_id: &str, g: &TokenGrant) -> Result<SealedTokens, ProviderError> {
        let cipher = self.cipher()?;
        let now = Utc::now();
        Ok(SealedTokens {
            access: cipher.seal(g.access_token.expose_secret(), &context(self.provider(), open_id, "access")),
            refresh: cipher.seal(g.refresh_token.expose_secret(), &context(self.provider(), open_id, "refresh")),
            access_expires_at: now + chrono::Duration::from_std(g.expires_in).unwrap_or_default(),
            refresh_expires_at: now + chrono::Duration::from_std(g.refresh_expires_in).unwrap_or_default(),
        })
    }

    fn open(&self, acct: &AccountRecord, which: &str, sealed: &str) -> Result<SecretString, ProviderError> {
        self.cipher()?
            .open(sealed, &context(self.provider(), &acct.open_id, which))
            .map_err(|e| crypto_error(self.provider(), e))
    }

    /// A usable access token for `account`, refreshed first when it is close
    /// to expiry. `stale` is a token version the caller saw refused by the
    /// platform: such a token is refreshed whatever its expiry says.
    pub async fn access_token(&self, account: &str, stale: Option<i64>) -> Result<(SecretString, i64), ProviderError> {
        self.cipher()?;
        let started = tokio::time::Instant::now();
        loop {
            let acct = self.load(account).await?;
            let tokens = self.usable(&acct)?;
            let fresh = is_fresh(tokens.access_expires_at, Utc::now(), self.refresh_margin);
            if fresh && Some(acct.token_version) != stale {
                return Ok((self.open(&acct, "access", &tokens.access)?, acct.token_version));
            }
            let owner = format!("{}:{}", self.process, uuid::Uuid::now_v7());
            if self.records.lock_refresh(&acct.id, &owner, self.lock_ttl).await.map_err(|e| self.store_error(e))? {
                return self.refresh_locked(&acct.id, acct.token_version, &owner).await;
            }
            // Another worker is refreshing: its result will show as a new version.
            if started.elapsed() > REFRESH_WAIT {
                return Err(ProviderError::new(
                    self.provider(),
                    codes::TOKEN_REFRESH_STALLED,
                    "another worker held the account's refresh lock for too long",
                    true,
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Refreshes while holding the lock; `seen` is the version that needed it.
    async fn refresh_locked(&self, id: &str, seen: i64, owner: &str) -> Result<(SecretString, i64), ProviderError> {
        let acct = self.load(id).await?;
        let tokens = match self.usable(&acct) {
            Ok(t) => t.clone(),
            Err(e) => {
                self.release(id, owner).await;
                return Err(e);
            }
        };
        if acct.token_version != seen {
            // Someone refreshed between our read and our lock.
            self.release(id, owner).await;
            return Ok((self.open(&acct, "access", &tokens.access)?, acct.token_version));
        }
        let refresh = self.open(&acct, "refresh", &tokens.refresh)?;
        match self.grantor.refresh(&refresh).await {
            Ok(grant) => {
                let sealed = self.seal(&acct.open_id, &grant)?;
                if !self.records.finish_refresh(id, owner, Some(&sealed)).await.map_err(|e| self.store_error(e))? {
                    warn!(account = %id, "refresh lock lapsed before the new tokens were stored");
                    return Err(ProviderError::new(
                        self.provider(),
                        codes::TOKEN_REFRESH_LOST,
                        "the refresh took longer than the refresh lock; raise tiktok.refresh_lock_secs",
                        true,
                    ));
                }
                info!(account = %id, platform = self.provider(), "access token refreshed");
                Ok((grant.access_token, acct.token_version + 1))
            }
            Err(e) if e.code == codes::INVALID_GRANT => {
                self.records
                    .set_account_status(id, AccountStatus::NeedsReconnect)
                    .await
                    .map_err(|e| self.store_error(e))?;
                self.release(id, owner).await;
                warn!(account = %id, platform = self.provider(), "the refresh token was refused; the account needs to be connected again");
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

    /// Revokes the grant at the platform (best effort: the tokens are deleted
    /// here whatever it answers) and deletes the tokens.
    pub async fn disconnect(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        let acct = self.load(account).await?;
        if let Some(tokens) = &acct.tokens {
            match self.open(&acct, "access", &tokens.access) {
                Ok(access) => {
                    if let Err(e) = self.grantor.revoke(&access).await {
                        warn!(account = %acct.id, code = e.code.as_str(), "the platform did not confirm the revocation; tokens deleted anyway");
                    }
                }
                Err(e) => warn!(account = %acct.id, error = %e.message, "token could not be opened to revoke it"),
            }
        }
        self.records.forget_tokens(&acct.id).await.map_err(|e| self.store_error(e))?;
        info!(account = %acct.id, platform = self.provider(), "account disconnected; tokens deleted");
        self.load(&acct.id).await
    }

    /// The account, by our id or its open_id; only one of this platform.
    pub async fn load(&self, account: &str) -> Result<AccountRecord, ProviderError> {
        let found = self.records.account(account).await.map_err(|e| self.store_error(e))?;
        match found {
            Some(acct) if acct.platform == self.provider() => Ok(acct),
            Some(acct) => Err(ProviderError::new(
                self.provider(),
                codes::ACCOUNT_UNKNOWN,
                format!(
                    "account `{account}` is a {} account, not a {} one; name it in that platform's target",
                    acct.platform,
                    self.provider()
                ),
                false,
            )),
            None => Err(ProviderError::new(
                self.provider(),
                codes::ACCOUNT_UNKNOWN,
                format!("no {} account `{account}` is connected; see GET /v1/accounts", self.provider()),
                false,
            )),
        }
    }

    /// The tokens of an account that can publish.
    fn usable<'a>(&self, acct: &'a AccountRecord) -> Result<&'a SealedTokens, ProviderError> {
        match (acct.status, &acct.tokens) {
            (AccountStatus::Connected, Some(t)) => Ok(t),
            (AccountStatus::NeedsReconnect, _) => Err(needs_reconnect(acct)),
            _ => Err(ProviderError::new(
                self.provider(),
                codes::ACCOUNT_DISCONNECTED,
                format!("{} account {} was disconnected; connect it again to publish", acct.platform, acct.id),
                false,
            )),
        }
    }

    pub fn store_error(&self, e: crate::store::records::StoreError) -> ProviderError {
        ProviderError::new(self.provider(), codes::RECORD_STORE_ERROR, e.to_string(), true)
    }
}

/// Whether an access token that expires at `expires_at` is still used as it
/// is at `now`: only while more than `margin` is left; at the margin it is
/// refreshed.
fn is_fresh(expires_at: DateTime<Utc>, now: DateTime<Utc>, margin: Duration) -> bool {
    expires_at - now > chrono::Duration::from_std(margin).unwrap_or_default()
}

/// The error whose jobs wait for the operator, with what to do.
pub fn needs_reconnect(acct: &AccountRecord) -> ProviderError {
    let platform = static_platform(&acct.platform);
    let how = match platform {
        "tiktok" => "`clipforge accounts connect` or GET /v1/accounts/tiktok/connect".to_string(),
        // No leading `/`: a stored job message keeps only the last part of a path.
        other => format!("the studio's Accounts page or {{server.url}}/v1/accounts/{other}/connect"),
    };
    ProviderError::new(
        platform,
        codes::NEEDS_RECONNECT,
        format!(
            "{} no longer accepts the grant of account {} ({}); connect it again with {how} — waiting jobs then \
             continue",
            display(platform),
            acct.id,
            acct.display_name
        ),
        true,
    )
}

/// A platform's name as people write it.
pub fn display(platform: &str) -> &'static str {
    match platform {
        "youtube" => "YouTube",
        "instagram" => "Instagram",
        _ => "TikTok",
    }
}

fn static_platform(platform: &str) -> &'static str {
    match platform {
        "youtube" => "youtube",
        "instagram" => "instagram",
        _ => "tiktok",
    }
}

/// Binds a sealed token to its platform, account and column.
fn context(platform: &str, open_id: &str, which: &str) -> String {
    format!("{platform}:{open_id}:{which}")
}

pub fn crypto_error(provider: &'static str, e: CryptoError) -> ProviderError {
    let code = match e {
        CryptoError::NoKey => codes::TOKEN_KEY_MISSING,
        CryptoError::BadKey => codes::TOKEN_KEY_INVALID,
        CryptoError::Open => codes::TOKEN_UNREADABLE,
    };
    ProviderError::new(provider, code, e.to_string(), false)
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

    #[test]
    fn a_sealed_token_is_bound_to_its_platform() {
        assert_eq!(
            context("tiktok", "abc", "access"),
            "tiktok:abc:access",
            "TikTok tokens sealed before stay readable"
        );
        assert_ne!(context("youtube", "abc", "access"), context("tiktok", "abc", "access"));
    }
}
