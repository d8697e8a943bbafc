//! Reviewer links: one job's review page for someone without a key.
//!
//! A link is `/r/<job id>.<expiry>.<signature>`: the expiry in Unix seconds,
//! the signature HMAC-SHA256 over both, keyed by a secret every API process
//! shares (made once and kept in the record store, see
//! [`crate::store::records::SessionStore::shared_secret`]). It opens that one
//! job's page, its video, and approve or send back; nothing else. Changing
//! any character, or waiting past the expiry, makes the link refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::JobId;

/// What a reviewer link grants: one job, until a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewGrant {
    pub job: JobId,
    pub expires_at: DateTime<Utc>,
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this reviewer link is not one this server made (it is incomplete or was changed)")]
    Invalid,
    #[error("this reviewer link expired at {0}; ask the team for a new one")]
    Expired(DateTime<Utc>),
}

fn mac(secret: &[u8], job: &JobId, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("clipforge review link v1\n{job}\n{expires}").as_bytes());
    mac
}

/// `t` without its fraction of a second, as a link carries it.
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The token of a link to `job` that expires at `expires_at`.
pub fn sign(secret: &[u8], job: &JobId, expires_at: DateTime<Utc>) -> String {
    let expires = expires_at.timestamp();
    let sig = mac(secret, job, expires).finalize().into_bytes();
    format!("{job}.{expires}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// What `token` grants at `now`, if it is one of ours and unexpired.
pub fn verify(secret: &[u8], token: &str, now: DateTime<Utc>) -> Result<ReviewGrant, LinkError> {
    let mut parts = token.split('.');
    let (Some(job), Some(expires), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(LinkError::Invalid);
    };
    // Only the id as we write it: another spelling of it is another token.
    let job = JobId::parse(job).filter(|id| id.as_str() == job).ok_or(LinkError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Invalid)?;
    // Constant-time comparison: a guesser learns nothing from timing.
    mac(secret, &job, expires).verify_slice(&sig).map_err(|_| LinkError::Invalid)?;
    let expires_at = DateTime::from_timestamp(expires, 0).ok_or(LinkError::Invalid)?;
    if expires_at <= now {
        return Err(LinkError::Expired(expires_at));
    }
    Ok(ReviewGrant { job, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_link_opens_its_job_until_it_expires() {
        let job = JobId::new();
        let token = sign(b"secret", &job, at("2026-12-05T10:00:00Z"));
        let grant = verify(b"secret", &token, at("2026-12-02T10:00:00Z")).unwrap();
        assert_eq!(grant, ReviewGrant { job: job.clone(), expires_at: at("2026-12-05T10:00:00Z") });
        assert_eq!(
            verify(b"secret", &token, at("2026-12-05T10:00:00Z")),
            Err(LinkError::Expired(at("2026-12-05T10:00:00Z")))
        );
    }

    #[test]
    fn a_changed_character_another_job_or_another_secret_is_refused() {
        let job = JobId::new();
        let now = at("2026-12-02T10:00:00Z");
        let token = sign(b"secret", &job, at("2026-12-05T10:00:00Z"));
        assert_eq!(verify(b"other", &token, now), Err(LinkError::Invalid));
        let other = JobId::new();
        let swapped = token.replacen(job.as_str(), other.as_str(), 1);
        assert_eq!(verify(b"secret", &swapped, now), Err(LinkError::Invalid), "another job");
        let expiry = at("2026-12-05T10:00:00Z").timestamp();
        let later = token.replacen(&format!(".{expiry}."), &format!(".{}.", expiry + 86_400), 1);
        assert_ne!(later, token);
        assert_eq!(verify(b"secret", &later, now), Err(LinkError::Invalid), "a longer life");
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(verify(b"secret", &tampered, now).is_err(), "byte {i} changed: {tampered}");
        }
        for bad in ["", "x", "a.b.c", &format!("{token}.x")] {
            assert_eq!(verify(b"secret", bad, now), Err(LinkError::Invalid), "{bad}");
        }
    }
}
