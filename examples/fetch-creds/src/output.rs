//! Writing `creds.json`: private from the first byte, never half-written, never replaced by
//! accident.
//!
//! The bytes go to a temporary file in the same directory, created with mode 0600 (so the
//! password is never readable by others, not even for a moment), flushed to disk, then renamed
//! over the target. A rename within one file system is atomic: a reader, or a crash, sees the old
//! file or the new one, never a mix. Without `--force` the rename refuses to replace an existing
//! file (`renameat2(RENAME_NOREPLACE)` or link + unlink), which also closes the race with the early
//! check in [`refuse_existing`].

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::errors::FetchError;

/// Fails early, before any password is asked for, when `path` exists and `force` is off.
pub fn refuse_existing(path: &Path, force: bool) -> Result<(), FetchError> {
    // `symlink_metadata`: a dangling symlink is still something we would replace.
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(FetchError::OutputExists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Writes `contents` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, contents: &[u8], force: bool) -> Result<(), FetchError> {
    let failed = |err: io::Error| FetchError::Write {
        path: path.to_owned(),
        detail: err.to_string(),
    };
    let dir = directory_of(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".fetch-creds-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    // Dropped before persisting (on any error below), the temporary file deletes itself.
    let mut temp = builder.tempfile_in(&dir).map_err(failed)?;
    temp.write_all(contents).map_err(failed)?;
    temp.as_file().sync_all().map_err(failed)?;

    let persisted = if force {
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    match persisted {
        Ok(_file) => {}
        Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(FetchError::OutputExists {
                path: path.to_owned(),
            })
        }
        Err(err) => return Err(failed(err.error)),
    }
    // Make the rename itself durable; not every file system lets a directory be synced.
    if let Err(err) = fs::File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::debug!("could not sync directory {}: {err}", dir.display());
    }
    Ok(())
}

/// The directory `path` lives in (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}
