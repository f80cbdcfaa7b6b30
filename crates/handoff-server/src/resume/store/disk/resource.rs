//! [`DiskResource`]: one resource's directory and its waiters. Every method does blocking
//! file I/O: [`DiskStore`](super::DiskStore) calls them on tokio's blocking pool, holding
//! the resource's mutex.
//!
//! ```text
//! <root>/<id>/meta.json   the metadata (format.rs), replaced atomically
//! <root>/<id>/body        the body bytes received: its size IS the length held
//! <root>/<id>/response    the recorded response (format.rs), replaced atomically
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::watch;

use super::format::{self, Meta};
use crate::resume::store::{NewResource, RecordedResponse, Resource, StoreError};
use crate::resume::{Owner, ResourceId};

const META: &str = "meta.json";
const BODY: &str = "body";
const RESPONSE: &str = "response";

/// A resource directory is assembled under this prefix and renamed into place, so a crash
/// during `create` never leaves a half-made `<id>` directory.
pub(super) const CREATING: &str = ".creating-";
/// A resource directory is renamed under this prefix before it is deleted, so a crash
/// during `remove` never leaves a `<id>` directory without its metadata.
pub(super) const REMOVING: &str = ".removing-";

/// The directory of `id` under `root`.
///
/// The name is `ResourceId`'s `Display`: exactly 32 lower-case hex digits, never a
/// separator, `.` or `..`, so it is one plain component inside `root` and no id can name a
/// path elsewhere. Every path this store touches is built here or from a constant prefix
/// and this same name.
pub(super) fn resource_dir(root: &Path, id: ResourceId) -> PathBuf {
    root.join(id.to_string())
}

/// One live resource: its directory, the metadata as `meta.json` holds it, and the sender
/// behind [`Store::changed`](crate::resume::store::Store::changed).
///
/// [`Resource::version`] is `meta.revision + length`: every metadata write bumps the
/// revision, every append grows the length, and both are on disk, so a restarted store
/// reports the version the previous process last reported (unless a power loss took back
/// unsynced bytes).
pub(super) struct DiskResource {
    dir: PathBuf,
    meta: Meta,
    version: watch::Sender<u64>,
}

impl DiskResource {
    /// Creates the directory of a new resource, durably.
    pub(super) fn create(root: &Path, id: ResourceId, new: &NewResource) -> io::Result<Self> {
        let meta = Meta {
            head: new.head.clone(),
            owner: new.owner,
            complete_length: new.complete_length,
            max_bytes: new.max_bytes,
            keep_incomplete: new.keep_incomplete,
            abandoned: None,
            responded_at: None,
            updated_at: format::now(),
            revision: 0,
        };
        let dir = resource_dir(root, id);
        let staging = root.join(format!("{CREATING}{id}"));
        if let Err(error) = assemble(root, &staging, &dir, &meta) {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
        Ok(Self {
            dir,
            meta,
            version: watch::Sender::new(0),
        })
    }

    /// Reads back the resource `id` a previous store left under `root`.
    pub(super) fn load(root: &Path, id: ResourceId) -> io::Result<Self> {
        let dir = resource_dir(root, id);
        let meta = format::decode_meta(&fs::read(dir.join(META))?)?;
        if meta.abandoned.is_some() {
            // Finish an `abandon` that a crash cut between its metadata write and the
            // removal of the body.
            if let Err(error) = remove_if_present(&dir.join(BODY)) {
                tracing::warn!(%id, %error, "could not delete an abandoned resource's body");
            }
        }
        let resource = Self {
            dir,
            meta,
            version: watch::Sender::new(0),
        };
        resource.announce()?;
        Ok(resource)
    }

    /// Whether the operation has no recorded response yet (it counts against the quotas).
    pub(super) fn is_open(&self) -> bool {
        self.meta.responded_at.is_none()
    }

    pub(super) fn owner(&self) -> Owner {
        self.meta.owner
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub(super) fn snapshot(&self, id: ResourceId) -> io::Result<Resource> {
        let meta = &self.meta;
        let (length, updated_at) = match meta.abandoned {
            Some(length) => (length, meta.updated_at),
            None => match fs::metadata(self.body()) {
                Ok(body) => {
                    let written = body.modified().unwrap_or(meta.updated_at);
                    (body.len(), written.max(meta.updated_at))
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => (0, meta.updated_at),
                Err(error) => return Err(error),
            },
        };
        Ok(Resource {
            id,
            head: meta.head.clone(),
            owner: meta.owner,
            length,
            complete_length: meta.complete_length,
            max_bytes: meta.max_bytes,
            keep_incomplete: meta.keep_incomplete,
            abandoned: meta.abandoned.is_some(),
            responded_at: meta.responded_at,
            updated_at,
            version: meta.revision + length,
        })
    }

    /// Compare-and-append; see [`Store::append`](crate::resume::store::Store::append).
    pub(super) fn append(&mut self, offset: u64, data: &[u8]) -> Result<u64, StoreError> {
        if self.meta.abandoned.is_some() {
            return Err(StoreError::Abandoned);
        }
        let mut body = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.body())?;
        let held = body.metadata()?.len();
        let end = check_append(&self.meta, held, offset, data.len() as u64)?;
        if data.is_empty() {
            return Ok(end);
        }
        if let Err(error) = write_at_end(&mut body, held, data) {
            // The file holds `held` bytes again, unless the rollback failed too: then tell
            // the waiters whatever it does hold.
            let _ = self.announce();
            return Err(error.into());
        }
        self.version.send_replace(self.meta.revision + end);
        Ok(end)
    }

    pub(super) fn set_complete_length(&mut self, length: u64) -> Result<(), StoreError> {
        let meta = &self.meta;
        let held = self.length()?;
        match meta.complete_length {
            Some(known) if known == length => return Ok(()),
            Some(known) => {
                return Err(StoreError::LengthMismatch {
                    held,
                    known: Some(known),
                })
            }
            None if length < held => return Err(StoreError::LengthMismatch { held, known: None }),
            None if length > meta.max_bytes => {
                return Err(StoreError::TooLarge {
                    max: meta.max_bytes,
                })
            }
            None => {}
        }
        Ok(self.persist(|meta| meta.complete_length = Some(length))?)
    }

    pub(super) fn read(&self, offset: u64, max: usize) -> Result<Bytes, StoreError> {
        if let Some(length) = self.meta.abandoned {
            return if offset < length {
                Err(StoreError::NotKept)
            } else {
                Ok(Bytes::new())
            };
        }
        let mut body = match File::open(self.body()) {
            Ok(body) => body,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Bytes::new()),
            Err(error) => return Err(error.into()),
        };
        let held = body.metadata()?.len();
        let want = held.saturating_sub(offset).min(max as u64);
        if want == 0 {
            return Ok(Bytes::new());
        }
        body.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::with_capacity(want as usize);
        body.take(want).read_to_end(&mut bytes)?;
        Ok(Bytes::from(bytes))
    }

    /// Flushes the body to the device; returns the length that is now durable.
    pub(super) fn sync(&self) -> io::Result<u64> {
        if let Some(length) = self.meta.abandoned {
            return Ok(length);
        }
        let body = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.body())?;
        body.sync_data()?;
        Ok(body.metadata()?.len())
    }

    pub(super) fn abandon(&mut self) -> io::Result<()> {
        if self.meta.abandoned.is_some() {
            return Ok(());
        }
        let held = self.length()?;
        // The metadata first: a crash after it leaves a body that `load` removes; a crash
        // before it leaves the resource as it was.
        self.persist(|meta| meta.abandoned = Some(held))?;
        remove_if_present(&self.body())
    }

    pub(super) fn record_response(&mut self, response: &RecordedResponse) -> io::Result<()> {
        if self.meta.responded_at.is_some() {
            return Ok(());
        }
        // `meta.json` decides whether a response exists: a crash between these two writes
        // leaves a `response` file that nothing reads and the next recording replaces.
        replace_file(&self.dir, RESPONSE, &format::encode_response(response))?;
        sync_dir(&self.dir)?;
        self.persist(|meta| meta.responded_at = Some(format::now()))
    }

    pub(super) fn response(&self) -> io::Result<Option<RecordedResponse>> {
        if self.meta.responded_at.is_none() {
            return Ok(None);
        }
        let bytes = fs::read(self.dir.join(RESPONSE))?;
        format::decode_response(Bytes::from(bytes)).map(Some)
    }

    /// Deletes the directory. Once this returns `Ok`, the resource is gone even if the
    /// process dies before the last file is deleted (`DiskStore::open` finishes the job).
    pub(super) fn remove_files(&self, root: &Path, id: ResourceId) -> io::Result<()> {
        let doomed = root.join(format!("{REMOVING}{id}"));
        fs::rename(&self.dir, &doomed)?;
        if let Err(error) = fs::remove_dir_all(&doomed) {
            tracing::warn!(%id, %error, "could not delete a removed resource's files");
        }
        Ok(())
    }

    fn body(&self) -> PathBuf {
        self.dir.join(BODY)
    }

    /// The length held: the body file's size, or the length at the time of abandonment.
    fn length(&self) -> io::Result<u64> {
        if let Some(length) = self.meta.abandoned {
            return Ok(length);
        }
        match fs::metadata(self.body()) {
            Ok(body) => Ok(body.len()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(error),
        }
    }

    /// Wakes the waiters with the version on disk.
    fn announce(&self) -> io::Result<()> {
        let version = self.meta.revision + self.length()?;
        self.version.send_replace(version);
        Ok(())
    }

    /// Applies `change` to the metadata and replaces `meta.json` with the result.
    fn persist(&mut self, change: impl FnOnce(&mut Meta)) -> io::Result<()> {
        let mut meta = self.meta.clone();
        change(&mut meta);
        meta.revision += 1;
        meta.updated_at = format::now();
        replace_file(&self.dir, META, &format::encode_meta(&meta))?;
        // The rename is the commit point: from here on the new metadata is what a reader
        // (or the next process) sees, so this copy follows it even if the directory sync
        // below fails.
        self.meta = meta;
        self.announce()?;
        sync_dir(&self.dir)
    }
}

/// Builds a resource's files in `staging`, durably, then renames it to `dir`.
fn assemble(root: &Path, staging: &Path, dir: &Path, meta: &Meta) -> io::Result<()> {
    private_dir(staging, false)?;
    write_synced(&staging.join(META), &format::encode_meta(meta))?;
    write_synced(&staging.join(BODY), b"")?;
    sync_dir(staging)?;
    // `rename` refuses to replace a non-empty directory, and a resource directory always
    // holds `meta.json`: an existing resource is never overwritten.
    fs::rename(staging, dir)?;
    sync_dir(root)
}

/// The checks of an append of `len` bytes at `offset` to a resource holding `held`: the
/// new length, or why not. The same order as `MemoryStore`.
fn check_append(meta: &Meta, held: u64, offset: u64, len: u64) -> Result<u64, StoreError> {
    if offset != held {
        return Err(StoreError::Conflict { held });
    }
    let end = held.saturating_add(len);
    let limit = meta.complete_length.unwrap_or(u64::MAX).min(meta.max_bytes);
    if end > limit {
        return Err(match meta.complete_length {
            Some(known) if known < meta.max_bytes => StoreError::LengthMismatch {
                held,
                known: Some(known),
            },
            _ => StoreError::TooLarge {
                max: meta.max_bytes,
            },
        });
    }
    Ok(end)
}

/// What [`write_at_end`] needs of a body file (a trait so tests can make writes fail).
trait BodyFile: Write + Seek {
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl BodyFile for File {
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Writes `data` after the `held` bytes of `body`, all of it or nothing: after a failed or
/// short write, the file is cut back to `held` bytes before the error is returned, so the
/// length read from its size never counts bytes that were not acknowledged.
fn write_at_end(body: &mut impl BodyFile, held: u64, data: &[u8]) -> io::Result<()> {
    let written = body
        .seek(SeekFrom::Start(held))
        .and_then(|_| body.write_all(data));
    if let Err(error) = written {
        if let Err(undo) = body.truncate(held) {
            tracing::error!(%error, %undo, "a failed append could not be rolled back");
        }
        return Err(error);
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file, flushed to the device,
/// then renamed over the old one. A crash leaves the old file or the new one, never a mix.
/// The caller syncs `dir` to make the rename itself durable.
///
/// One fixed temporary name per file is enough: the resource's mutex serialises its
/// writers, and the directory lock keeps other processes out.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    write_synced(&temporary, bytes)?;
    fs::rename(&temporary, dir.join(name))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Makes the creations, renames and deletions inside `dir` durable (POSIX: an fsync on the
/// directory). Windows offers no such call and journals its metadata itself.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates a directory only its owner can enter: a resource's files hold the request head,
/// credentials included (they are needed to run the handler again after a restart).
pub(super) fn private_dir(path: &Path, recursive: bool) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A body file whose writes fail after `budget` more bytes.
    struct Flaky {
        file: Cursor<Vec<u8>>,
        budget: usize,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::other("device full"));
            }
            let n = buf.len().min(self.budget).min(3);
            self.budget -= n;
            self.file.write(&buf[..n])
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Flaky {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.file.seek(pos)
        }
    }

    impl BodyFile for Flaky {
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.file.get_mut().truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_cut_back_to_the_old_length() {
        let mut body = Flaky {
            file: Cursor::new(b"held".to_vec()),
            budget: 5,
        };
        // Several short writes go through before the device fills up.
        assert!(write_at_end(&mut body, 4, b"0123456789").is_err());
        assert_eq!(body.file.get_ref(), b"held");

        body.budget = 10;
        write_at_end(&mut body, 4, b"0123456789").unwrap();
        assert_eq!(body.file.get_ref(), b"held0123456789");
    }

    #[test]
    fn a_file_that_takes_nothing_is_cut_back_too() {
        struct Zero(Cursor<Vec<u8>>);
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Seek for Zero {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.0.seek(pos)
            }
        }
        impl BodyFile for Zero {
            fn truncate(&mut self, len: u64) -> io::Result<()> {
                self.0.get_mut().truncate(len as usize);
                Ok(())
            }
        }
        let mut body = Zero(Cursor::new(b"ab".to_vec()));
        let error = write_at_end(&mut body, 2, b"c").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
        assert_eq!(body.0.get_ref(), b"ab");
    }

    #[test]
    fn ids_name_one_plain_component() {
        let root = Path::new("/srv/store");
        let id = ResourceId::mint().unwrap();
        let dir = resource_dir(root, id);
        assert_eq!(dir.parent(), Some(root));
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 32);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
