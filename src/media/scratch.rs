//! Per-job scratch folders that remove themselves.

use std::path::{Path, PathBuf};

use crate::domain::{JobId, Stage};

/// A folder for one stage of one job, removed when dropped.
///
/// Its path is fixed by job and stage, so a redelivery after a crash (when no
/// destructor ran) starts by clearing what the crashed delivery left behind.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates an empty folder `<root>/<job>-<stage>`, clearing any leftover.
    pub async fn fresh(root: &Path, job: &JobId, stage: Stage) -> std::io::Result<Self> {
        Self::fresh_named(root, job, stage.as_str()).await
    }

    /// Creates an empty folder `<root>/<job>-<name>`, clearing any leftover:
    /// for work of which one job has several at once, each under its own
    /// name (the segments of a segmented render, which workers sharing a
    /// scratch folder may render side by side).
    pub async fn fresh_named(root: &Path, job: &JobId, name: &str) -> std::io::Result<Self> {
        let path = root.join(format!("{job}-{name}"));
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => tracing::info!(job_id = %job, work = name, "removed scratch left by an earlier delivery"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tokio::fs::create_dir_all(&path).await?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "scratch folder could not be removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leftovers_are_cleared_and_the_folder_goes_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let job = JobId::new();
        let first = ScratchDir::fresh(root.path(), &job, Stage::Render).await.unwrap();
        std::fs::write(first.join("partial.mp4"), b"x").unwrap();
        std::mem::forget(first); // a crash: no destructor runs
        let second = ScratchDir::fresh(root.path(), &job, Stage::Render).await.unwrap();
        assert!(!second.join("partial.mp4").exists());
        let path = second.path().to_path_buf();
        drop(second);
        assert!(!path.exists());
    }
}
