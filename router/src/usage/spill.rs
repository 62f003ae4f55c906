//! The spill file: where usage records go when the store is down or slower than the requests, to
//! be replayed, in order, once it answers again (and at start, after a crash).
//!
//! One JSON record per line, appended (`O_APPEND`) under a mutex; nothing is rewritten in place.
//! Durability: an append is in the kernel's page cache when it returns, so it survives the
//! process being killed (SIGKILL, OOM); the writer `fdatasync`s the file at most a second later
//! ([`Spill::sync`]), after which it survives a machine crash too. A write that fails (disk full)
//! is cut back off the file, so it never leaves a torn line before the next record; a torn last
//! line found at open (a machine crash mid-write) is cut off and counted as dropped. The file is
//! locked (`flock`) while a router uses it: two routers never share one.
//!
//! Replay reads complete lines from an offset the writer keeps; once it has read to the end and
//! nothing was appended since, the file is truncated to empty.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use super::record::UsageRecord;

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The file reached its size limit.
    #[error("the spill file is full ({0} bytes)")]
    Full(u64),
    /// Writing failed (disk full, I/O error).
    #[error("writing the spill file failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Records read back by [`Spill::read`].
#[derive(Debug, Default)]
pub struct Chunk {
    /// Records in file order.
    pub records: Vec<UsageRecord>,
    /// Offset just after the last complete line read.
    pub end: u64,
    /// Lines that did not parse as a record (skipped; logged by the caller).
    pub corrupt: u64,
}

struct Appender {
    file: File,
    len: u64,
}

/// An open, locked spill file.
pub struct Spill {
    path: PathBuf,
    appender: Mutex<Appender>,
    /// A second handle on the same file, for `fdatasync` without holding the append lock.
    sync_handle: Arc<File>,
    max_bytes: u64,
    /// Bytes in the file (also a gauge).
    len: AtomicU64,
    /// Appended since the last sync.
    dirty: AtomicBool,
}

impl Spill {
    /// Opens (creating) and locks `path`. A torn last line is cut off; the number of bytes cut is
    /// returned beside the spill so the caller can report it.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<(Spill, u64)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another process (each router needs its own spill file)",
                    path.display()
                ),
            ),
            std::fs::TryLockError::Error(e) => e,
        })?;
        let len = file.metadata()?.len();
        let complete = complete_length(&file, len)?;
        if complete < len {
            file.set_len(complete)?;
            file.sync_data()?;
        }
        let sync_handle = Arc::new(file.try_clone()?);
        Ok((
            Spill {
                path: path.to_path_buf(),
                appender: Mutex::new(Appender {
                    file,
                    len: complete,
                }),
                sync_handle,
                max_bytes,
                len: AtomicU64::new(complete),
                dirty: AtomicBool::new(false),
            },
            len - complete,
        ))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes waiting to be replayed (and not yet truncated away).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing waits in the file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends records, all or none, in order.
    pub fn append<'a>(
        &self,
        records: impl IntoIterator<Item = &'a UsageRecord>,
    ) -> Result<(), SpillError> {
        let mut buf = Vec::with_capacity(512);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        if buf.is_empty() {
            return Ok(());
        }
        let mut a = self.appender.lock().expect("spill lock poisoned");
        let new_len = a.len + buf.len() as u64;
        if new_len > self.max_bytes {
            return Err(SpillError::Full(self.max_bytes));
        }
        if let Err(e) = a.file.write_all(&buf) {
            // Cut a partial write back off, so the next record starts on a line of its own.
            let _ = a.file.set_len(a.len);
            return Err(e.into());
        }
        a.len = new_len;
        self.len.store(new_len, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Up to `max` records from `offset` (complete lines only).
    pub fn read(&self, offset: u64, max: usize) -> std::io::Result<Chunk> {
        let mut reader = BufReader::new(File::open(&self.path)?);
        reader.seek(SeekFrom::Start(offset))?;
        let mut chunk = Chunk {
            end: offset,
            ..Chunk::default()
        };
        let mut line = Vec::new();
        while chunk.records.len() < max {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            chunk.end += n as u64;
            match serde_json::from_slice::<UsageRecord>(&line) {
                Ok(r) => chunk.records.push(r),
                Err(_) => chunk.corrupt += 1,
            }
        }
        Ok(chunk)
    }

    /// Truncates the file when everything up to `offset` was replayed and nothing was appended
    /// since; returns whether it did.
    pub fn finish(&self, offset: u64) -> std::io::Result<bool> {
        let mut a = self.appender.lock().expect("spill lock poisoned");
        if a.len != offset {
            return Ok(false);
        }
        a.file.set_len(0)?;
        a.len = 0;
        self.len.store(0, Ordering::Release);
        Ok(true)
    }

    /// `fdatasync`s the file if anything was appended since the last call (off the async
    /// runtime: it can take milliseconds).
    pub async fn sync(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = self.sync_handle.clone();
        match tokio::task::spawn_blocking(move || file.sync_data()).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// The length of `file` up to and including its last newline.
fn complete_length(file: &File, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.read_exact_at(&mut buf[..n], start)?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::tests::sample;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-spill-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("usage.spill")
    }

    #[test]
    fn records_come_back_in_order_and_the_file_empties_when_replayed() {
        let path = temp("order");
        let (spill, torn) = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(torn, 0);
        let a = sample("a", 1);
        let b = sample("b", 2);
        spill.append([&a]).unwrap();
        spill.append([&b, &a]).unwrap();
        let first = spill.read(0, 2).unwrap();
        assert_eq!(first.records, [a.clone(), b.clone()]);
        let rest = spill.read(first.end, 10).unwrap();
        assert_eq!(rest.records, std::slice::from_ref(&a));
        // Something appended after the read: not finished yet.
        spill.append([&b]).unwrap();
        assert!(!spill.finish(rest.end).unwrap());
        let last = spill.read(rest.end, 10).unwrap();
        assert!(spill.finish(last.end).unwrap());
        assert!(spill.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // Appends after truncation start at the beginning again.
        spill.append([&a]).unwrap();
        assert_eq!(spill.read(0, 10).unwrap().records, [a]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open_and_corrupt_lines_are_skipped() {
        let path = temp("torn");
        let whole = serde_json::to_string(&sample("a", 1)).unwrap();
        std::fs::write(
            &path,
            format!("{whole}\nnot json\n{whole}\n{{\"id\":\"gen-tor"),
        )
        .unwrap();
        let (spill, torn) = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(torn, 14);
        let chunk = spill.read(0, 10).unwrap();
        assert_eq!(chunk.records.len(), 2);
        assert_eq!(chunk.corrupt, 1);
        assert_eq!(chunk.end, spill.len());
        drop(spill);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn the_size_limit_refuses_whole_appends_and_the_lock_refuses_a_second_router() {
        let path = temp("limit");
        let r = sample("a", 1);
        // Room for one record and a half.
        let limit = (serde_json::to_string(&r).unwrap().len() as u64 + 1) * 3 / 2;
        let (spill, _) = Spill::open(&path, limit).unwrap();
        spill.append([&r]).unwrap();
        assert!(matches!(spill.append([&r, &r]), Err(SpillError::Full(l)) if l == limit));
        assert_eq!(spill.read(0, 10).unwrap().records.len(), 1);
        let second = Spill::open(&path, limit);
        assert!(
            second.is_err(),
            "a second open of a locked spill file must fail"
        );
        drop(spill);
        assert!(
            Spill::open(&path, limit).is_ok(),
            "the lock goes with the spill"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
