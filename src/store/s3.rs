//! The object store on an S3-compatible bucket: AWS S3, Cloudflare R2, Garage.
//!
//! Two choices matter for R2 and other non-AWS servers:
//! - request checksum calculation and response validation are `WhenRequired`:
//!   the SDK's 2025 defaults (CRC32 trailers, aws-chunked bodies) are refused
//!   by R2 ("You can only specify one non-default checksum") and by Garage;
//! - large files go up in a streamed multipart upload with equal-size parts
//!   (R2 requires it), read from disk part by part so memory stays flat, and
//!   the upload is aborted when a part fails.
//!
//! Expiry is the bucket's job: [`S3Store::ensure_lifecycle`] installs and
//! checks a rule that expires `renders/` after the retention period.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;

use super::objects::{ObjectError, ObjectKey, ObjectStore};
use crate::settings::StorageSettings;

/// The prefix staged renders live under, expired by the lifecycle rule.
pub const RENDERS_PREFIX: &str = "renders/";
const EXPIRE_RULE_ID: &str = "clipforge-expire-renders";
const ABORT_RULE_ID: &str = "clipforge-abort-incomplete-multipart";
const WORK_RULE_ID: &str = "clipforge-expire-work";
/// Hand-offs between stages; one left by a crash is useless after a day.
const WORK_PREFIX: &str = "work/";

/// Why the bucket's lifecycle rule could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "cannot set the lifecycle rule of bucket `{bucket}` ({message}). Give these credentials \
         s3:PutLifecycleConfiguration and s3:GetLifecycleConfiguration, or set the rule yourself \
         (expire prefix `renders/` after {days} days; abort incomplete multipart uploads after 1 day; \
         on R2: bucket settings → Object lifecycle rules) and set storage.manage_lifecycle = false"
    )]
    Denied { bucket: String, days: u32, message: String },
    #[error("the lifecycle rule of bucket `{bucket}` did not read back as set: {found}")]
    NotApplied { bucket: String, found: String },
}

/// Objects in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    part_size: u64,
}

/// An SDK failure as an [`ObjectError`]: service 5xx, throttling and network
/// trouble are retryable, the rest (denied, no such bucket) are not. The
/// message is the service's own code and text, never a signed URL.
fn s3_error<E>(op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> ObjectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            status >= 500 || status == 429 || matches!(e.err().code(), Some("SlowDown" | "RequestTimeout"))
        }
        _ => false,
    };
    let message = match err.as_service_error() {
        Some(e) => format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("no message")),
        None => DisplayErrorContext(&err).to_string(),
    };
    ObjectError::Remote { op, key: key.to_string(), message, retryable }
}

impl S3Store {
    /// Builds the client from settings; makes no request.
    pub async fn connect(s: &StorageSettings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if !s.endpoint.is_empty() {
            loader = loader.endpoint_url(&s.endpoint);
        }
        if let Some(secret) = &s.secret_access_key {
            loader = loader.credentials_provider(Credentials::new(
                &s.access_key_id,
                secret.expose_secret(),
                None,
                None,
                "clipforge-settings",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(s.path_style).build();
        Self { client: Client::from_conf(config), bucket: s.bucket.clone(), part_size: s.part_size_mb * 1024 * 1024 }
    }

    /// The client's configuration (tests check the checksum settings on it).
    pub fn client_config(&self) -> &aws_sdk_s3::Config {
        self.client.config()
    }

    /// Puts the expiry rules in place (renders/ after `days`, work/ after a day,
    /// unfinished multipart uploads after a day) and reads them back.
    /// This replaces the bucket's lifecycle configuration: give clipforge a
    /// bucket of its own.
    pub async fn ensure_lifecycle(&self, days: u32) -> Result<(), LifecycleError> {
        let denied = |message: String| LifecycleError::Denied { bucket: self.bucket.clone(), days, message };
        let expire = LifecycleRule::builder()
            .id(EXPIRE_RULE_ID)
            .filter(LifecycleRuleFilter::builder().prefix(RENDERS_PREFIX).build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(days as i32).build())
            .build()
            .map_err(|e| denied(e.to_string()))?;
        let abort = LifecycleRule::builder()
            .id(ABORT_RULE_ID)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .status(ExpirationStatus::Enabled)
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
            )
            .build()
            .map_err(|e| denied(e.to_string()))?;
        let work = LifecycleRule::builder()
            .id(WORK_RULE_ID)
            .filter(LifecycleRuleFilter::builder().prefix(WORK_PREFIX).build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .map_err(|e| denied(e.to_string()))?;
        let config = BucketLifecycleConfiguration::builder()
            .rules(expire)
            .rules(work)
            .rules(abort)
            .build()
            .map_err(|e| denied(e.to_string()))?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| denied(s3_error("put lifecycle", "", e).to_string()))?;
        let rules = self.lifecycle_rules().await.map_err(|e| denied(e.to_string()))?;
        let has = |prefix: &str, want: u32| rules.iter().any(|(p, d)| p == prefix && *d == Some(want));
        if has(RENDERS_PREFIX, days) && has(WORK_PREFIX, 1) {
            Ok(())
        } else {
            Err(LifecycleError::NotApplied { bucket: self.bucket.clone(), found: format!("{rules:?}") })
        }
    }

    /// The bucket's lifecycle rules as (prefix, expiration days).
    pub async fn lifecycle_rules(&self) -> Result<Vec<(String, Option<u32>)>, ObjectError> {
        let out = self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_error("get lifecycle", "", e))?;
        Ok(out
            .rules()
            .iter()
            .map(|r| {
                let prefix = r.filter().and_then(|f| f.prefix()).unwrap_or_default().to_string();
                let days = r.expiration().and_then(|e| e.days()).map(|d| d as u32);
                (prefix, days)
            })
            .collect())
    }

    async fn put_multipart(&self, key: &ObjectKey, src: &Path, size: u64) -> Result<(), ObjectError> {
        let k = key.as_str();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(k)
            .content_type(content_type(k))
            .send()
            .await
            .map_err(|e| s3_error("create multipart upload", k, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let uploaded = async {
            let mut parts = Vec::new();
            for (index, offset) in (0..size).step_by(self.part_size as usize).enumerate() {
                let length = self.part_size.min(size - offset);
                let number = index as i32 + 1;
                // Read from disk as the part is sent: never more than a part's buffers in memory.
                let body = ByteStream::read_from()
                    .path(src)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| ObjectError::Io { key: k.to_string(), source: std::io::Error::other(e) })?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(k)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| s3_error("upload part", k, e))?;
                parts.push(
                    CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(String::from)).build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(k)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|e| s3_error("complete multipart upload", k, e))?;
            Ok(())
        }
        .await;
        if uploaded.is_err() {
            // Nothing half-stored: the parts sent so far are dropped.
            let _ = self.client.abort_multipart_upload().bucket(&self.bucket).key(k).upload_id(&upload_id).send().await;
        }
        uploaded
    }
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("mp4") => "video/mp4",
        Some("wav") => "audio/wav",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_file(&self, key: &ObjectKey, src: &Path) -> Result<u64, ObjectError> {
        let io = |source| ObjectError::Io { key: key.to_string(), source };
        let size = tokio::fs::metadata(src).await.map_err(io)?.len();
        if size > self.part_size {
            self.put_multipart(key, src, size).await?;
        } else {
            let body = ByteStream::from_path(src).await.map_err(|e| io(std::io::Error::other(e)))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_type(content_type(key.as_str()))
                .body(body)
                .send()
                .await
                .map_err(|e| s3_error("put", key.as_str(), e))?;
        }
        Ok(size)
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), ObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type(key.as_str()))
            .body(ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| s3_error("put", key.as_str(), e))?;
        Ok(())
    }

    async fn get_bytes(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>, ObjectError> {
        match self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => {
                let data = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| ObjectError::Io { key: key.to_string(), source: std::io::Error::other(e) })?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_error("get", key.as_str(), e)),
        }
    }

    async fn fetch_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64, ObjectError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(ObjectError::NotFound(key.to_string()));
            }
            Err(e) => return Err(s3_error("get", key.as_str(), e)),
        };
        let io = |source| ObjectError::Io { key: key.to_string(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut body = out.body.into_async_read();
        let bytes = tokio::io::copy(&mut body, &mut file).await.map_err(io)?;
        file.flush().await.map_err(io)?;
        Ok(bytes)
    }

    async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectError> {
        match self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error("head", key.as_str(), e)),
        }
    }

    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<u64, ObjectError> {
        // Keys are restricted to URL-safe characters, so the copy source needs no escaping.
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to.as_str())
            .copy_source(format!("{}/{}", self.bucket, from.as_str()))
            .send()
            .await
            .map_err(|e| s3_error("copy", from.as_str(), e))?;
        self.delete(from).await?;
        self.size(to).await?.ok_or_else(|| ObjectError::NotFound(to.to_string()))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| s3_error("delete", key.as_str(), e))?;
        Ok(())
    }

    async fn sweep(&self, _prefix: &str, _max_age: Duration) -> Result<u64, ObjectError> {
        // The bucket's lifecycle rule expires objects; nothing to do here.
        Ok(0)
    }

    async fn presigned_get(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<String>, ObjectError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| ObjectError::Remote {
            op: "presign",
            key: key.to_string(),
            message: e.to_string(),
            retryable: false,
        })?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign", key.as_str(), e))?;
        Ok(Some(request.uri().to_string()))
    }

    fn local_path(&self, _key: &ObjectKey) -> Option<PathBuf> {
        None
    }

    fn describe(&self) -> String {
        format!("s3 bucket {}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_checksum_settings_are_when_required() {
        let settings = crate::settings::Settings::load_with_env(
            None,
            Some(vec![
                ("CLIPFORGE__STORAGE__TYPE".into(), "s3".into()),
                ("CLIPFORGE__STORAGE__BUCKET".into(), "renders".into()),
                ("CLIPFORGE__STORAGE__ENDPOINT".into(), "http://127.0.0.1:1".into()),
            ]),
        )
        .unwrap();
        let store = S3Store::connect(&settings.storage).await;
        let config = store.client_config();
        assert_eq!(config.request_checksum_calculation(), Some(&RequestChecksumCalculation::WhenRequired));
        assert_eq!(config.response_checksum_validation(), Some(&ResponseChecksumValidation::WhenRequired));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("renders/x.mp4"), "video/mp4");
        assert_eq!(content_type("cache/x"), "application/octet-stream");
    }
}
