//! The model file on disk, untrusted for as long as a model uses it.
//!
//! A [`ModelFile`] is opened once per load and shared by everything that reads tensor bytes: the
//! header parse, WHOLE mode's copy into the guest, Memory64 mode's layer and row reads, and
//! `verifyUnit`'s independent checksum. Two rules make a changing file harmless:
//! - **Bytes are read with `pread`, never through a mapping.** A mapping of a file that shrank
//!   faults with SIGBUS, which no thread of a Node process survives; `pread` of the same range
//!   returns short instead (and reads the page cache faster than faulting a mapping in: 9.6 vs
//!   5.5 GB/s in 64 MiB chunks on the 1.5B file, measured 2026-12-01).
//! - **Every read is followed by a check of the file's identity** (size and modification time
//!   from `fstat`, device and inode of the path from `stat`; ~2 µs) against what it was at open.
//!   Linux stamps the modification time before a `write` copies any data, so a write that could
//!   have reached the bytes just read is seen by the check after the read. A change ends that read
//!   and every later one with `ERR_FILE_CHANGED` naming what changed, so output is never made from
//!   bytes of another file. (Not seen: a change that restores the old size and modification time,
//!   and a write within the same clock tick as the file's last one before open.)

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{ErrorCode as E, Result, fail, io_err};

/// What a file was at open: the facts a later check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Identity {
    fn of(m: &Metadata) -> Self {
        Self { dev: m.dev(), ino: m.ino(), len: m.len(), mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()) }
    }
}

/// A regular file opened for reading, checked against its identity at open after every read
/// (see the module docs).
#[derive(Debug)]
pub struct ModelFile {
    file: File,
    path: PathBuf,
    at_open: Identity,
}

impl ModelFile {
    /// Opens `path`. Anything but a regular file (a FIFO, a directory, a device) is `ERR_IO`;
    /// opening never blocks (a FIFO is opened non-blocking, then refused).
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io_err(format!("cannot open {}", path.display()), e))?;
        let meta = file.metadata().map_err(|e| io_err(format!("cannot stat {}", path.display()), e))?;
        if !meta.is_file() {
            let t = meta.file_type();
            let what = if t.is_dir() {
                "a directory"
            } else if t.is_fifo() {
                "a FIFO"
            } else if t.is_socket() {
                "a socket"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            };
            return fail(E::Io, format!("{} is not a regular file ({what}); a model must be a regular GGUF file", path.display()));
        }
        // Regular files ignore O_NONBLOCK for reads; clear it anyway so the descriptor is plain.
        // SAFETY: fcntl on a descriptor this function owns, with integer arguments only.
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_SETFL, 0) };
        Ok(Self { at_open: Identity::of(&meta), file, path: path.to_path_buf() })
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size at open.
    pub fn len(&self) -> u64 {
        self.at_open.len
    }

    /// Whether the file was empty at open.
    pub fn is_empty(&self) -> bool {
        self.at_open.len == 0
    }

    /// The open file (for mapping it).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// A sequential reader from byte 0 (by `pread`, so it moves no shared file position), for
    /// the header; callers [`check`](ModelFile::check) the file after reading.
    pub(crate) fn reader(&self) -> impl Read + '_ {
        struct At<'a>(&'a File, u64);
        impl Read for At<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read_at(buf, self.1)?;
                self.1 += n as u64;
                Ok(n)
            }
        }
        At(&self.file, 0)
    }

    /// Fills `dst` from `offset`, then checks that the file is still the one opened. `what`
    /// names the bytes in errors (e.g. `tensor "blk.0.attn_q.weight"`).
    pub fn read_exact_at(&self, dst: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        let mut done = 0usize;
        while done < dst.len() {
            match self.file.read_at(&mut dst[done..], offset + done as u64) {
                Ok(0) => {
                    self.check()?;
                    let end = offset + dst.len() as u64;
                    return fail(E::FileChanged, format!("{} ends before the end of {} (byte {end}; read {} of {} bytes at offset {offset})", self.path.display(), what(), done, dst.len()));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(format!("reading {} of {}", what(), self.path.display()), e)),
            }
        }
        self.check()
    }

    /// `ERR_FILE_CHANGED` if the file's size or modification time changed since open, or its
    /// path now names another file (or none).
    pub fn check(&self) -> Result<()> {
        let now = Identity::of(&self.file.metadata().map_err(|e| io_err(format!("cannot stat {}", self.path.display()), e))?);
        let was = self.at_open;
        let p = self.path.display();
        if now.len != was.len {
            return fail(E::FileChanged, format!("{p} changed after it was loaded: its size went from {} to {} bytes", was.len, now.len));
        }
        if now.mtime_ns != was.mtime_ns {
            return fail(E::FileChanged, format!("{p} changed after it was loaded: it was modified (mtime {} -> {} ns since the epoch)", was.mtime_ns, now.mtime_ns));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == (was.dev, was.ino) => Ok(()),
            Ok(m) => fail(E::FileChanged, format!("{p} changed after it was loaded: the path now names another file (inode {} -> {})", was.ino, m.ino())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(E::FileChanged, format!("{p} changed after it was loaded: the path no longer exists")),
            Err(e) => Err(io_err(format!("cannot stat {p}"), e)),
        }
    }
}
