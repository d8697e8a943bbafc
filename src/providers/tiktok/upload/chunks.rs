//! Sending a render's bytes: chunk by chunk, each retried on a server error
//! or a dropped connection, resumed from what TikTok says it has.

use super::*;

/// Tries of one chunk that met a server error or a dropped connection.
const CHUNK_TRIES: u32 = 5;

impl InboxUploader {
    /// Sends chunks from `start` on. False when the upload URL expired and
    /// the upload must start again (the upload is abandoned).
    pub(super) async fn send_chunks(
        &self,
        upload: &UploadRecord,
        url: &SecretString,
        plan: &ChunkPlan,
        file: &Path,
        start: u64,
        progress: &(dyn Fn(u8) + Send + Sync),
    ) -> Result<bool, UploadError> {
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ProviderError::new(PROVIDER, codes::VIDEO_UNREADABLE, e.to_string(), true))?;
        let mut index = start;
        let mut jumps = 0;
        while index < plan.total_chunk_count {
            if Utc::now() - upload.created_at >= UPLOAD_URL_LIFETIME {
                warn!(publish_id = %upload.publish_id, "the upload URL's hour is over; starting a new upload");
                self.abandon(upload).await?;
                return Ok(false);
            }
            let (first, last) = plan.range(index);
            let mut bytes = vec![0u8; (last - first + 1) as usize];
            f.seek(std::io::SeekFrom::Start(first))
                .await
                .map_err(|e| ProviderError::new(PROVIDER, codes::VIDEO_UNREADABLE, e.to_string(), true))?;
            f.read_exact(&mut bytes)
                .await
                .map_err(|e| ProviderError::new(PROVIDER, codes::VIDEO_UNREADABLE, e.to_string(), true))?;
            match self.put_with_retries(url, plan, index, bytes).await? {
                ChunkAnswer::Accepted => index += 1,
                ChunkAnswer::Complete => {
                    index = plan.total_chunk_count;
                }
                ChunkAnswer::OutOfOrder { received: Some(n) } if jumps < 3 => {
                    jumps += 1;
                    info!(publish_id = %upload.publish_id, received = n, "TikTok holds a different range; resuming there");
                    if n >= plan.video_size {
                        index = plan.total_chunk_count;
                    } else {
                        index = n / plan.chunk_size;
                    }
                    continue;
                }
                ChunkAnswer::OutOfOrder { .. } => {
                    return Err(ProviderError::new(
                        PROVIDER,
                        codes::UPLOAD_OUT_OF_ORDER,
                        "TikTok's upload progress could not be matched to a chunk",
                        true,
                    )
                    .into());
                }
                ChunkAnswer::Expired => {
                    warn!(publish_id = %upload.publish_id, "upload URL expired; starting a new upload");
                    self.abandon(upload).await?;
                    return Ok(false);
                }
            }
            progress((index * 90 / plan.total_chunk_count) as u8);
        }
        self.set_status(upload, UploadStatus::Uploaded).await?;
        info!(publish_id = %upload.publish_id, "every chunk received");
        Ok(true)
    }

    /// One chunk, sent again as it was after a server error or a lost connection.
    pub(super) async fn put_with_retries(
        &self,
        url: &SecretString,
        plan: &ChunkPlan,
        index: u64,
        bytes: Vec<u8>,
    ) -> Result<ChunkAnswer, ProviderError> {
        let mut wait = Duration::from_millis(500);
        let mut tries = 1;
        loop {
            match self.accounts.api.put_chunk(url, plan, index, bytes.clone()).await {
                Err(e) if e.retryable && tries < CHUNK_TRIES => {
                    warn!(chunk = index + 1, code = e.code.as_str(), tries, "chunk not accepted; sending it again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                    tries += 1;
                }
                other => return other,
            }
        }
    }
}
