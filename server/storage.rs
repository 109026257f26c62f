//! Blob storage for clips, posters, filmstrips and exports, behind one
//! interface: a local directory by default, any S3-compatible store for
//! deployments with several instances.
//!
//! Both are `object_store` implementations, so the code above this module
//! never knows which one it talks to. FFmpeg works on local files; the media
//! worker copies a blob to a temporary file first (see [`Blobs::download`]).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;

/// Parts of a multipart upload; S3 requires at least 5 MiB per part.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// The blob store.
#[derive(Clone, Debug)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store: its files are synced to disk before
    /// a write counts as done, like the database's commits.
    local_root: Option<PathBuf>,
    /// What it is, for logs and health checks.
    pub description: String,
}

impl Blobs {
    /// The store named by the configuration: `blob_store` empty means
    /// `<data_dir>/blobs`; `s3://bucket` uses the `s3_*` settings.
    pub fn from_config(config: &Config) -> anyhow::Result<Blobs> {
        if config.blob_store.is_empty() {
            return Blobs::local(&config.data_dir.join("blobs"));
        }
        let Some(bucket) = config.blob_store.strip_prefix("s3://") else {
            anyhow::bail!("blob_store must be empty (local directory) or s3://BUCKET");
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket.trim_end_matches('/'))
            .with_allow_http(config.s3_allow_http);
        if !config.s3_endpoint.is_empty() {
            builder = builder.with_endpoint(&config.s3_endpoint);
        }
        if !config.s3_region.is_empty() {
            builder = builder.with_region(&config.s3_region);
        }
        if !config.s3_access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&config.s3_access_key_id)
                .with_secret_access_key(&config.s3_secret_access_key);
        }
        let store = builder.build().context("configuring S3 blob storage")?;
        Ok(Blobs {
            store: Arc::new(store),
            local_root: None,
            description: format!("s3://{bucket}"),
        })
    }

    /// A local directory, created if missing.
    pub fn local(root: &Path) -> anyhow::Result<Blobs> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let store = LocalFileSystem::new_with_prefix(root)
            .with_context(|| format!("opening blob directory {}", root.display()))?;
        Ok(Blobs {
            store: Arc::new(store),
            local_root: Some(root.to_path_buf()),
            description: root.display().to_string(),
        })
    }

    /// Uploads a local file in parts, never holding it whole in memory;
    /// returns its size.
    pub async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<u64> {
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().await?.len();
        if size as usize <= PART_SIZE {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await?;
            self.store
                .put(&Key::from(key), PutPayload::from(buf))
                .await
                .with_context(|| format!("storing {key}"))?;
            self.sync(key).await?;
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&Key::from(key))
            .await
            .with_context(|| format!("starting upload of {key}"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: anyhow::Result<()> = async {
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(4).await?;
                writer.write(&buf[..n]);
            }
            // Every part sent but the last, which `finish` sends.
            writer.wait_for_capacity(0).await?;
            Ok(())
        }
        .await;
        if let Err(e) = sent {
            // S3 keeps (and bills) the parts of an upload that is neither
            // completed nor aborted; dropping the writer does not abort it.
            let _ = writer.abort().await;
            return Err(e).with_context(|| format!("uploading {key}"));
        }
        writer
            .finish()
            .await
            .with_context(|| format!("finishing upload of {key}"))?;
        self.sync(key).await?;
        Ok(size)
    }

    /// Flushes a locally stored blob and its directory entry to disk.
    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let path = root.join(key);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await?
        .with_context(|| format!("syncing {key} to disk"))
    }

    /// Stores bytes held in memory (small artifacts: posters, filmstrips).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.store
            .put(&Key::from(key), PutPayload::from(bytes))
            .await
            .with_context(|| format!("storing {key}"))?;
        self.sync(key).await
    }

    /// A byte range of a blob as a stream, for ranges too large to hold in
    /// memory at once.
    pub async fn stream_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> anyhow::Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        Ok(self
            .store
            .get_opts(&Key::from(key), options)
            .await
            .with_context(|| format!("reading {key}"))?
            .into_stream())
    }

    /// Where a blob of the local store is on disk, for copying it without
    /// the store's per-call hop to a blocking thread; `None` for a remote
    /// store (or a key the local store would have to encode).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        let plain = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        plain.then(|| root.join(key))
    }

    /// The size of a blob.
    pub async fn size(&self, key: &str) -> anyhow::Result<u64> {
        Ok(self
            .store
            .head(&Key::from(key))
            .await
            .with_context(|| format!("reading {key}"))?
            .size)
    }

    /// A byte range of a blob.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> anyhow::Result<Bytes> {
        self.store
            .get_range(&Key::from(key), range)
            .await
            .with_context(|| format!("reading {key}"))
    }

    /// Copies a blob to a local file, streaming.
    pub async fn download(&self, key: &str, dest: &Path) -> anyhow::Result<u64> {
        use futures::StreamExt;
        let result = self
            .store
            .get(&Key::from(key))
            .await
            .with_context(|| format!("reading {key}"))?;
        let mut stream = result.into_stream();
        let mut file = tokio::fs::File::create(dest)
            .await
            .with_context(|| format!("creating {}", dest.display()))?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            total += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(total)
    }

    /// The blobs whose keys start with the segments of `prefix`, each with
    /// when it was last written (epoch ms), in no particular order.
    pub fn list(
        &self,
        prefix: &str,
    ) -> futures::stream::BoxStream<'static, anyhow::Result<(String, i64)>> {
        use futures::StreamExt;
        self.store
            .list(Some(&Key::from(prefix)))
            .map(|meta| {
                let meta = meta.context("listing blobs")?;
                Ok((
                    meta.location.to_string(),
                    meta.last_modified.timestamp_millis(),
                ))
            })
            .boxed()
    }

    /// Deletes a blob; deleting a missing one is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {key}")),
        }
    }
}

/// A directory for the temporary files of this process under
/// `<data_dir>/tmp`, named after the process id. Directories of processes
/// that are gone (crashed) are removed, so leftovers do not pile up; where
/// process ids cannot be checked, only directories untouched for a day are.
pub fn scratch_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let parent = data_dir.join("tmp");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let can_check_pids = Path::new("/proc/self").exists();
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    for entry in std::fs::read_dir(&parent)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let gone = match pid {
            Some(pid) if can_check_pids => !Path::new(&format!("/proc/{pid}")).exists(),
            _ => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < day_ago),
        };
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = parent.join(format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_keys_of_a_local_store_have_a_local_path() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        assert_eq!(
            blobs.local_path("clips/s1/c1/video.mp4"),
            Some(dir.path().join("clips/s1/c1/video.mp4"))
        );
        for odd in ["", "a//b", "../etc/passwd", "a/./b", "a b", "a/%2F", "ä"] {
            assert_eq!(blobs.local_path(odd), None, "{odd:?}");
        }
    }
}
