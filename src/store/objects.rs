//! The object store: staged renders (`renders/`), hand-offs between stages
//! (`work/`) and the provider cache (`cache/`).
//!
//! [`ObjectStore`] is the interface; [`LocalFolder`] is the embedded
//! implementation. Writes are atomic: a file is written under a temporary name
//! and renamed, so a crash never leaves half an object under a real key.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// A validated object key: `/`-separated segments of `A-Za-z0-9._-`, no `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(raw: &str) -> Result<Self, ObjectError> {
        let ok = !raw.is_empty()
            && raw.len() <= 512
            && raw.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            });
        if ok { Ok(Self(raw.to_string())) } else { Err(ObjectError::BadKey(raw.to_string())) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object store failure.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("`{0}` is not a valid object key")]
    BadKey(String),
    #[error("object `{0}` does not exist")]
    NotFound(String),
    #[error("object store I/O on `{key}`: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// A remote store (S3/R2) refused or failed a request.
    #[error("object store {op} `{key}`: {message}")]
    Remote { op: &'static str, key: String, message: String, retryable: bool },
}

impl ObjectError {
    /// A missing object stays missing; I/O trouble may pass.
    pub fn is_retryable(&self) -> bool {
        match self {
            ObjectError::Io { .. } => true,
            ObjectError::Remote { retryable, .. } => *retryable,
            ObjectError::BadKey(_) | ObjectError::NotFound(_) => false,
        }
    }
}

/// The interface every object store implements.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores the file at `src` under `key`, replacing what was there; returns its size.
    async fn put_file(&self, key: &ObjectKey, src: &Path) -> Result<u64, ObjectError>;
    /// Stores `bytes` under `key` (small things: cached JSON answers).
    async fn put_bytes(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), ObjectError>;
    /// The object's bytes, or `None` when it does not exist.
    async fn get_bytes(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>, ObjectError>;
    /// Writes the object to `dest`; returns its size.
    async fn fetch_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64, ObjectError>;
    /// The object's size, or `None` when it does not exist.
    async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectError>;
    /// Moves an object to a new key (the hand-off from `work/` to `renders/`).
    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<u64, ObjectError>;
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError>;
    /// Deletes objects under `prefix` older than `max_age`; returns how many.
    /// Stores with a lifecycle rule of their own (S3/R2) leave this to it.
    async fn sweep(&self, prefix: &str, max_age: std::time::Duration) -> Result<u64, ObjectError>;
    /// A link anyone can download the object from for `ttl`, for stores that
    /// can sign one. The link is a credential: hand it out, never log it.
    async fn presigned_get(&self, key: &ObjectKey, ttl: std::time::Duration) -> Result<Option<String>, ObjectError>;
    /// Where the object is on this machine's disk, for stores that have one.
    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf>;
    /// A short description for readiness checks and logs.
    fn describe(&self) -> String;
}

/// Objects as files under one folder.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    root: PathBuf,
}

impl LocalFolder {
    pub async fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        tokio::fs::create_dir_all(root.join(".tmp")).await?;
        // Absolute, so the paths it hands out work from any working directory.
        let root = tokio::fs::canonicalize(&root).await?;
        Ok(Self { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn io(key: &ObjectKey) -> impl FnOnce(std::io::Error) -> ObjectError + '_ {
        move |source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ObjectError::NotFound(key.to_string())
            } else {
                ObjectError::Io { key: key.to_string(), source }
            }
        }
    }
}

#[async_trait]
impl ObjectStore for LocalFolder {
    async fn put_file(&self, key: &ObjectKey, src: &Path) -> Result<u64, ObjectError> {
        let dest = self.path(key);
        let tmp = self.root.join(".tmp").join(uuid::Uuid::now_v7().to_string());
        let result = async {
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let bytes = tokio::fs::copy(src, &tmp).await?;
            tokio::fs::rename(&tmp, &dest).await?;
            Ok(bytes)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map_err(Self::io(key))
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: &[u8]) -> Result<(), ObjectError> {
        let dest = self.path(key);
        let tmp = self.root.join(".tmp").join(uuid::Uuid::now_v7().to_string());
        let result = async {
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &dest).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result.map_err(Self::io(key))
    }

    async fn get_bytes(&self, key: &ObjectKey) -> Result<Option<Vec<u8>>, ObjectError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ObjectError::Io { key: key.to_string(), source }),
        }
    }

    async fn fetch_to(&self, key: &ObjectKey, dest: &Path) -> Result<u64, ObjectError> {
        let src = self.path(key);
        // A hard link costs nothing. It fails across file systems, and also
        // (ENOENT) when a concurrent put renamed a new file over the key just
        // after the path was looked up: linking an inode with no names left is
        // refused. Copying opens the path afresh, so it finds the new file, and
        // says NotFound only when there is no object.
        match tokio::fs::hard_link(&src, dest).await {
            Ok(()) => Ok(tokio::fs::metadata(dest).await.map_err(Self::io(key))?.len()),
            Err(_) => tokio::fs::copy(&src, dest).await.map_err(Self::io(key)),
        }
    }

    async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, ObjectError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ObjectError::Io { key: key.to_string(), source }),
        }
    }

    async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<u64, ObjectError> {
        let dest = self.path(to);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(Self::io(to))?;
        }
        tokio::fs::rename(self.path(from), &dest).await.map_err(Self::io(from))?;
        if let Some(parent) = self.path(from).parent() {
            // Leave no empty work/<job>/ folders behind; fails harmlessly when not empty.
            let _ = tokio::fs::remove_dir(parent).await;
        }
        Ok(tokio::fs::metadata(&dest).await.map_err(Self::io(to))?.len())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ObjectError::Io { key: key.to_string(), source }),
        }
        // An emptied work/<job>/ folder goes too, as in `rename`: a folder named
        // after a job is a trace of it. (Shared folders such as cache/footage/
        // stay, so a concurrent put into them never loses its folder.)
        if key.as_str().starts_with("work/")
            && let Some(parent) = path.parent()
        {
            let _ = tokio::fs::remove_dir(parent).await;
        }
        Ok(())
    }

    async fn sweep(&self, prefix: &str, max_age: std::time::Duration) -> Result<u64, ObjectError> {
        let cutoff = std::time::SystemTime::now() - max_age;
        let mut removed = 0;
        let mut folders = vec![self.root.join(prefix)];
        while let Some(dir) = folders.pop() {
            let io = |source| ObjectError::Io { key: prefix.to_string(), source };
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io)? {
                let meta = entry.metadata().await.map_err(io)?;
                if meta.is_dir() {
                    folders.push(entry.path());
                } else if meta.modified().map_err(io)? < cutoff {
                    // Another process may sweep the same folder: gone already is fine.
                    match tokio::fs::remove_file(entry.path()).await {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(e)),
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn presigned_get(&self, _key: &ObjectKey, _ttl: std::time::Duration) -> Result<Option<String>, ObjectError> {
        Ok(None)
    }

    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        Some(self.path(key))
    }

    fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_being_replaced_can_still_be_fetched() {
        // Jobs sharing a cache object put it at the same time: each put renames
        // a new file over the key while another job links the old one out.
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolder::open(dir.path().join("objects")).await.unwrap();
        let key = ObjectKey::parse("cache/footage/shared.mp4").unwrap();
        let src = dir.path().join("src.mp4");
        std::fs::write(&src, vec![7u8; 64 * 1024]).unwrap();
        store.put_file(&key, &src).await.unwrap();
        let writer = {
            let (store, key, src) = (store.clone(), key.clone(), src.clone());
            tokio::spawn(async move {
                for _ in 0..4000 {
                    store.put_file(&key, &src).await.unwrap();
                }
            })
        };
        let out = tempfile::tempdir().unwrap();
        for i in 0..4000 {
            let dest = out.path().join(format!("{i}.mp4"));
            assert_eq!(store.fetch_to(&key, &dest).await.unwrap(), 64 * 1024, "fetch {i}");
        }
        writer.await.unwrap();
    }

    #[test]
    fn keys_cannot_escape_the_store() {
        for bad in ["", "../x", "a/../b", "/abs", "a//b", "a/.hidden", "sp ace", "a\\b"] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectKey::parse("renders/0190-abc.mp4").is_ok());
    }

    #[tokio::test]
    async fn the_sweeper_deletes_only_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolder::open(dir.path()).await.unwrap();
        let src = dir.path().join("v.mp4");
        std::fs::write(&src, b"video").unwrap();
        for key in ["renders/old.mp4", "renders/new.mp4", "cache/footage/old.mp4"] {
            store.put_file(&ObjectKey::parse(key).unwrap(), &src).await.unwrap();
        }
        let fifteen_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(15 * 86_400);
        for key in ["renders/old.mp4", "cache/footage/old.mp4"] {
            let f = std::fs::File::options().write(true).open(dir.path().join(key)).unwrap();
            f.set_modified(fifteen_days_ago).unwrap();
        }
        let removed = store.sweep("renders/", std::time::Duration::from_secs(14 * 86_400)).await.unwrap();
        assert_eq!(removed, 1);
        assert!(!dir.path().join("renders/old.mp4").exists());
        assert!(dir.path().join("renders/new.mp4").exists());
        assert!(dir.path().join("cache/footage/old.mp4").exists(), "only the asked prefix is swept");
    }

    #[tokio::test]
    async fn put_fetch_rename_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolder::open(dir.path().join("objects")).await.unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"12345").unwrap();
        let work = ObjectKey::parse("work/j1/video.mp4").unwrap();
        let staged = ObjectKey::parse("renders/j1.mp4").unwrap();
        assert_eq!(store.put_file(&work, &src).await.unwrap(), 5);
        assert_eq!(store.rename(&work, &staged).await.unwrap(), 5);
        assert_eq!(store.size(&work).await.unwrap(), None);
        assert!(!dir.path().join("objects/work/j1").exists(), "empty hand-off folder removed");
        let dest = dir.path().join("copy.bin");
        store.fetch_to(&staged, &dest).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"12345");
        let small = ObjectKey::parse("cache/x.json").unwrap();
        assert_eq!(store.get_bytes(&small).await.unwrap(), None);
        store.put_bytes(&small, b"{}").await.unwrap();
        assert_eq!(store.get_bytes(&small).await.unwrap().unwrap(), b"{}");
        store.delete(&staged).await.unwrap();
        assert!(matches!(store.fetch_to(&staged, &dir.path().join("x")).await, Err(ObjectError::NotFound(_))));
        assert_eq!(std::fs::read_dir(dir.path().join("objects/.tmp")).unwrap().count(), 0);
    }
}
