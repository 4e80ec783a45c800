//! The durable log of a replica process.
//!
//! The protocol machine is sans-IO: it emits `Persist(record)` effects (durable before any later send of the node
//! leaves) and `PersistCheckpoint(bytes)` effects (a checkpoint that replaces all earlier records). [`Log`] stores
//! them. [`Log::append`] only buffers; [`Log::sync`] writes the buffer and issues one `fdatasync`, so a host doing
//! group commit pays one fsync per batch. [`Log::checkpoint`] stores a snapshot durably and drops the records it
//! supersedes. [`Log::open`] gives back what the machine needs after a crash: the latest checkpoint and every record
//! appended after it, having cut off any torn or corrupt tail.
//!
//! # On-disk format
//!
//! All integers are little-endian. Every record has a global index (0, 1, 2, ...) counted over the whole life of
//! the log, including records later superseded by a checkpoint.
//!
//! * Segment `log-<index of its first record, 20 digits>.seg`: a 16-byte header (`b"QLOG"`, version `u32` = 1,
//!   first record index `u64`), then records. A record is `len: u32`, `crc: u32`, `payload: [u8; len]`, where `crc`
//!   is the CRC-32 of the four length bytes followed by the payload (so a damaged length is caught too).
//! * Snapshot `snapshot-<index, 20 digits>.snap`: a 28-byte header (`b"QSNP"`, version `u32` = 1, index `u64`,
//!   payload length `u64`, CRC-32 of the index and length bytes followed by the payload), then the payload. The
//!   index is the number of records appended before the checkpoint: recovery replays the records from that index.
//!   It is written as `<name>.tmp` and renamed into place, so a torn snapshot is only ever a leftover temp file.
//!
//! A checkpoint at index `n` always starts a fresh segment `log-<n>.seg`, so segments never straddle a checkpoint.

#![warn(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};

use bytes::Bytes;

#[cfg(test)]
mod tests;

/// Largest record [`Log::append`] accepts; on recovery a larger length field counts as damage.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

const SEG_MAGIC: &[u8; 4] = b"QLOG";
const SNAP_MAGIC: &[u8; 4] = b"QSNP";
const VERSION: u32 = 1;
const SEG_HEADER: usize = 16;
const SNAP_HEADER: usize = 28;
const RECORD_HEADER: usize = 8;
/// Buffered bytes beyond which `append` writes them out (without fsync) so a host that rarely syncs does not
/// accumulate unbounded memory.
const WRITE_THRESHOLD: usize = 4 << 20;

/// How a [`Log`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment that would grow beyond this size is closed and a new one started (a single larger record still
    /// gets a segment of its own).
    pub segment_bytes: u64,
    /// Whether to fsync at all. `false` writes data but never fsyncs: only for benchmarks and tests.
    pub fsync: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_bytes: 64 << 20, fsync: true }
    }
}

/// What [`Log::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest valid checkpoint record, if any checkpoint was ever stored.
    pub checkpoint: Option<Bytes>,
    /// Every valid record appended after that checkpoint (or since the log was created), in order.
    pub records: Vec<Bytes>,
    /// The damaged tail that was discarded, if any.
    pub damage: Option<Damage>,
}

/// A damaged tail found and discarded by [`Log::open`]: everything from `offset` in `segment` on, plus all later
/// segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment in which the first damaged byte was found.
    pub segment: PathBuf,
    /// Offset in `segment` where the discarded data starts.
    pub offset: u64,
    /// Total bytes discarded, in `segment` and the later segments that were removed.
    pub discarded_bytes: u64,
    /// What was wrong: "torn record", "torn header", "checksum mismatch", "bad length" or "missing records".
    pub reason: &'static str,
}

/// Counters since [`Log::open`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records passed to [`Log::append`].
    pub records_appended: u64,
    /// Bytes written to segment and snapshot files (headers included).
    pub bytes_written: u64,
    /// Syncs that had records to make durable (including a checkpoint's sync of pending appends).
    pub syncs: u64,
    /// fsync/fdatasync calls on files and the directory, including those [`Log::open`] makes.
    pub fsyncs: u64,
    /// Checkpoints stored.
    pub checkpoints: u64,
}

/// Errors of the durable log.
#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    /// An I/O call failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file named like a log file is not one we can read (wrong magic, version or header).
    #[error("{} is not a valid quorate log file: {reason}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The durable state cannot be rebuilt without silently losing data that was once durable.
    #[error("cannot recover the log from {}: {reason}", path.display())]
    Unrecoverable {
        /// The file that made recovery impossible.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// [`Log::append`] was given a record larger than [`MAX_RECORD_BYTES`].
    #[error("record of {len} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge {
        /// Size of the rejected record.
        len: usize,
    },
    /// An earlier I/O error left the files in an unknown state (after a failed fsync the kernel may have dropped
    /// the dirty pages); the log must be reopened, which recovers from what is really on disk.
    #[error("log is unusable after an earlier I/O error; reopen it to recover")]
    Poisoned,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

/// An append-only, segmented, checksummed log with snapshots. See the crate docs for the format.
///
/// Dropping a `Log` discards appends not yet synced, exactly as a crash would: call [`Log::sync`] first.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    opts: LogOptions,
    /// The last segment, open for appending.
    file: File,
    file_path: PathBuf,
    /// Index of the first record of the current segment.
    seg_first: u64,
    /// Size of the current segment, counting bytes still in `buf`.
    seg_len: u64,
    /// Encoded records (and a fresh segment's header) not yet written to `file`.
    buf: Vec<u8>,
    /// Index the next appended record gets.
    next_index: u64,
    /// `next_index` at the last sync: records before it are durable.
    synced_index: u64,
    /// `file` holds written data that is not yet fsynced.
    file_dirty: bool,
    /// Rotated-out segments whose tail is written but not yet fsynced; the next sync covers them.
    rotated: Vec<(PathBuf, File)>,
    /// A segment was created since the directory was last fsynced; its name is not durable yet.
    dir_dirty: bool,
    poisoned: bool,
    stats: LogStats,
}

impl Log {
    /// Opens the log in `dir` (creating the directory if needed) and recovers it.
    ///
    /// A damaged tail (torn or corrupt record, absurd length, gap between segments) is reported in
    /// [`Recovered::damage`] and cut off: the segment is truncated at the first bad record and later segments are
    /// removed, so new appends continue cleanly. Leftover temp snapshots and files superseded by the latest
    /// checkpoint are deleted. If the newest snapshot is corrupt, an older one is used only when it and the records
    /// after it still reach the corrupt snapshot's index; otherwise this fails rather than roll back durable state.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Log, Recovered), StorageError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(at(dir))?;
            if opts.fsync {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                sync_dir(parent)?;
            }
        }
        let listing = list_dir(dir)?;
        for tmp in &listing.temps {
            fs::remove_file(tmp).map_err(at(tmp))?;
        }
        let plan = plan_recovery(&listing)?;

        for path in &plan.stale {
            remove_if_exists(path)?;
        }
        if let Some((path, len)) = &plan.truncate {
            OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(*len)).map_err(at(path))?;
        }
        for path in &plan.remove {
            remove_if_exists(path)?;
        }

        let next_index = plan.base + plan.records.len() as u64;
        let mut buf = Vec::new();
        let (file, file_path, seg_first, seg_len) = match plan.tail {
            Some((first, path, len)) => {
                let file = OpenOptions::new().append(true).open(&path).map_err(at(&path))?;
                if len == 0 {
                    buf.extend_from_slice(&segment_header(first));
                    (file, path, first, SEG_HEADER as u64)
                } else {
                    (file, path, first, len)
                }
            }
            None => {
                let (path, file) = create_segment(dir, next_index)?;
                buf.extend_from_slice(&segment_header(next_index));
                (file, path, next_index, SEG_HEADER as u64)
            }
        };
        // What is handed back must be durable before the machine acts on it: after a process crash (as opposed
        // to a power loss) the files can hold data that was written but never fsynced. The directory fsync also
        // makes the removals durable: a removed segment that reappeared could line up with records appended later
        // and be replayed as if it belonged to them.
        let mut stats = LogStats::default();
        if opts.fsync {
            for path in &plan.keep {
                File::open(path).and_then(|f| f.sync_data()).map_err(at(path))?;
            }
            sync_dir(dir)?;
            stats.fsyncs = plan.keep.len() as u64 + 1;
        }
        let log = Log {
            dir: dir.to_path_buf(),
            opts,
            file,
            file_path,
            seg_first,
            seg_len,
            buf,
            next_index,
            synced_index: next_index,
            file_dirty: false,
            rotated: Vec::new(),
            dir_dirty: false,
            poisoned: false,
            stats,
        };
        Ok((log, Recovered { checkpoint: plan.checkpoint, records: plan.records, damage: plan.damage }))
    }

    /// Appends one record. It is only buffered: not durable (and possibly not even written) until [`Log::sync`].
    pub fn append(&mut self, record: &[u8]) -> Result<(), StorageError> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(StorageError::RecordTooLarge { len: record.len() });
        }
        let size = (RECORD_HEADER + record.len()) as u64;
        self.guard(|log| {
            if log.seg_len + size > log.opts.segment_bytes && log.next_index > log.seg_first {
                log.rotate()?;
            }
            let len = (record.len() as u32).to_le_bytes();
            log.buf.extend_from_slice(&len);
            log.buf.extend_from_slice(&record_crc(len, record).to_le_bytes());
            log.buf.extend_from_slice(record);
            log.seg_len += size;
            log.next_index += 1;
            log.stats.records_appended += 1;
            if log.buf.len() >= WRITE_THRESHOLD {
                log.write_buffer()?;
            }
            Ok(())
        })
    }

    /// Makes every appended record durable: writes the buffer, then fdatasyncs the segment(s) written since the
    /// last sync (and the directory if a segment was created). A no-op when no record was appended since.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.guard(|log| {
            // A fresh segment's header may still be buffered; it can wait for the first record, since recovery
            // takes an empty last segment for what it is.
            if log.next_index == log.synced_index {
                return Ok(());
            }
            log.write_buffer()?;
            if log.opts.fsync {
                for (path, file) in &log.rotated {
                    file.sync_data().map_err(at(path))?;
                    log.stats.fsyncs += 1;
                }
                log.file.sync_data().map_err(at(&log.file_path))?;
                log.stats.fsyncs += 1;
                if log.dir_dirty {
                    sync_dir(&log.dir)?;
                    log.stats.fsyncs += 1;
                }
            }
            log.rotated.clear();
            log.file_dirty = false;
            log.dir_dirty = false;
            log.synced_index = log.next_index;
            log.stats.syncs += 1;
            Ok(())
        })
    }

    /// Durably stores a checkpoint that replaces every record appended before it; durable on return.
    ///
    /// Pending appends are synced first, not discarded: until the new snapshot is renamed into place the previous
    /// snapshot plus its complete log is the fallback recovery uses, and that log must reach this checkpoint. The
    /// snapshot goes to a temp file that is fsynced and renamed; a fresh segment is started and the directory is
    /// fsynced; only then are the superseded segments and older snapshots deleted. Costs the sync of pending
    /// appends, if any, plus two fsyncs (snapshot file, directory).
    pub fn checkpoint(&mut self, snapshot: &[u8]) -> Result<(), StorageError> {
        self.sync()?;
        self.guard(|log| {
            let index = log.next_index;
            let path = log.dir.join(snapshot_name(index));
            let tmp = path.with_extension("snap.tmp");
            let mut file = File::create(&tmp).map_err(at(&tmp))?;
            file.write_all(&snapshot_header(index, snapshot)).map_err(at(&tmp))?;
            file.write_all(snapshot).map_err(at(&tmp))?;
            log.stats.bytes_written += (SNAP_HEADER + snapshot.len()) as u64;
            if log.opts.fsync {
                file.sync_data().map_err(at(&tmp))?;
                log.stats.fsyncs += 1;
            }
            drop(file);
            fs::rename(&tmp, &path).map_err(at(&tmp))?;
            if log.seg_first != index {
                log.rotate()?;
            }
            if log.opts.fsync {
                sync_dir(&log.dir)?;
                log.stats.fsyncs += 1;
            }
            log.dir_dirty = false;
            let listing = list_dir(&log.dir)?;
            let old_snapshots = listing.snapshots.iter().filter(|(i, _)| *i != index);
            let old_segments = listing.segments.iter().filter(|(first, _)| *first < index);
            for (_, old) in old_snapshots.chain(old_segments) {
                remove_if_exists(old)?;
            }
            log.stats.checkpoints += 1;
            Ok(())
        })
    }

    /// Counters since open.
    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// Runs a fallible operation, poisoning the log if it fails: after a failed write or fsync the file contents
    /// are unknown, and carrying on could acknowledge records that are not durable.
    fn guard<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T, StorageError>) -> Result<T, StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        let result = op(self);
        self.poisoned = result.is_err();
        result
    }

    fn write_buffer(&mut self) -> Result<(), StorageError> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf).map_err(at(&self.file_path))?;
            self.stats.bytes_written += self.buf.len() as u64;
            self.buf.clear();
            self.file_dirty = true;
        }
        Ok(())
    }

    /// Closes the current segment and starts one at `next_index`. The old segment's tail is written but its fsync
    /// is left to the next sync, so rotation adds no fsync to the append path.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        let (path, file) = create_segment(&self.dir, self.next_index)?;
        let old_path = mem::replace(&mut self.file_path, path);
        let old_file = mem::replace(&mut self.file, file);
        if self.file_dirty {
            self.rotated.push((old_path, old_file));
        }
        self.file_dirty = false;
        self.buf.extend_from_slice(&segment_header(self.next_index));
        self.seg_first = self.next_index;
        self.seg_len = SEG_HEADER as u64;
        self.dir_dirty = true;
        Ok(())
    }
}

/// Files in the log directory, each list sorted by index. Files with other names are ignored.
struct Listing {
    segments: Vec<(u64, PathBuf)>,
    snapshots: Vec<(u64, PathBuf)>,
    temps: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, StorageError> {
    let mut listing = Listing { segments: Vec::new(), snapshots: Vec::new(), temps: Vec::new() };
    for entry in fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if let Some(first) = parse_index(&name, "log-", ".seg") {
            listing.segments.push((first, entry.path()));
        } else if let Some(index) = parse_index(&name, "snapshot-", ".snap") {
            listing.snapshots.push((index, entry.path()));
        } else if parse_index(&name, "snapshot-", ".snap.tmp").is_some() {
            listing.temps.push(entry.path());
        }
    }
    listing.segments.sort();
    listing.snapshots.sort();
    Ok(listing)
}

fn parse_index(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

fn segment_name(first: u64) -> String {
    format!("log-{first:020}.seg")
}

fn snapshot_name(index: u64) -> String {
    format!("snapshot-{index:020}.snap")
}

/// What `open` must do, decided by reading only, so a refusal to recover leaves the directory untouched.
struct Plan {
    base: u64,
    checkpoint: Option<Bytes>,
    records: Vec<Bytes>,
    damage: Option<Damage>,
    /// The segment to keep appending to: first index, path, valid length.
    tail: Option<(u64, PathBuf, u64)>,
    truncate: Option<(PathBuf, u64)>,
    /// Damaged segments after the first damage.
    remove: Vec<PathBuf>,
    /// Files superseded by the chosen snapshot.
    stale: Vec<PathBuf>,
    /// Segments holding the recovered records.
    keep: Vec<PathBuf>,
}

fn plan_recovery(listing: &Listing) -> Result<Plan, StorageError> {
    let mut chosen = None;
    let mut newest_corrupt = None;
    for (index, path) in listing.snapshots.iter().rev() {
        match read_snapshot(path, *index)? {
            Ok(payload) => {
                chosen = Some((*index, payload));
                break;
            }
            Err(reason) => {
                newest_corrupt.get_or_insert((*index, path, reason));
            }
        }
    }
    let base = chosen.as_ref().map_or(0, |(index, _)| *index);
    let chain: Vec<&(u64, PathBuf)> = listing.segments.iter().filter(|(first, _)| *first >= base).collect();
    if chosen.is_none() && newest_corrupt.is_none() {
        if let Some((first, path)) = chain.first().filter(|(first, _)| *first != 0) {
            let reason = format!("log starts at record {first} but there is no snapshot");
            return Err(StorageError::Unrecoverable { path: path.clone(), reason });
        }
    }
    let stale_snapshots = listing.snapshots.iter().filter(|(index, _)| *index < base);
    let stale_segments = listing.segments.iter().filter(|(first, _)| *first < base);
    let mut plan = Plan {
        base,
        checkpoint: chosen.map(|(_, payload)| payload),
        records: Vec::new(),
        damage: None,
        tail: None,
        truncate: None,
        remove: Vec::new(),
        keep: Vec::new(),
        stale: stale_snapshots.chain(stale_segments).map(|(_, path)| path.clone()).collect(),
    };

    let mut expected = base;
    for (i, (first, path)) in chain.iter().enumerate() {
        let later = &chain[i + 1..];
        let total_len =
            |segments: &[&(u64, PathBuf)]| segments.iter().map(|(_, p)| file_len(p)).sum::<Result<u64, _>>();
        if *first != expected {
            // The previous segment lost its unsynced tail while this newer one survived.
            let discarded_bytes = total_len(&chain[i..])?;
            plan.damage = Some(Damage { segment: path.clone(), offset: 0, discarded_bytes, reason: "missing records" });
            plan.remove.extend(chain[i..].iter().map(|(_, p)| p.clone()));
            break;
        }
        let scan = scan_segment(path, *first)?;
        plan.keep.push(path.clone());
        expected += scan.records.len() as u64;
        plan.records.extend(scan.records);
        let Some((offset, reason)) = scan.damage else {
            plan.tail = Some((*first, path.clone(), scan.len));
            continue;
        };
        // An empty last segment is the normal state right after a rotation or checkpoint: not damage.
        if scan.len > 0 || !later.is_empty() {
            let discarded_bytes = scan.len - offset + total_len(later)?;
            plan.damage = Some(Damage { segment: path.clone(), offset, discarded_bytes, reason });
        }
        plan.truncate = Some((path.clone(), offset));
        plan.tail = Some((*first, path.clone(), offset));
        plan.remove.extend(later.iter().map(|(_, p)| p.clone()));
        break;
    }

    if let Some((index, path, reason)) = newest_corrupt {
        if expected < index {
            let reason = format!(
                "snapshot has a {reason} and no older snapshot with a log reaching record {index} exists \
                 (the log recovered reaches record {expected})"
            );
            return Err(StorageError::Unrecoverable { path: path.clone(), reason });
        }
    }
    Ok(plan)
}

struct SegmentScan {
    records: Vec<Bytes>,
    len: u64,
    /// Offset of the first damaged byte and what is wrong there.
    damage: Option<(u64, &'static str)>,
}

fn scan_segment(path: &Path, first: u64) -> Result<SegmentScan, StorageError> {
    let data = Bytes::from(fs::read(path).map_err(at(path))?);
    let len = data.len() as u64;
    if data.len() < SEG_HEADER {
        return Ok(SegmentScan { records: Vec::new(), len, damage: Some((0, "torn header")) });
    }
    if check_header(path, &data, SEG_MAGIC)? != first {
        return Err(StorageError::Format { path: path.to_path_buf(), reason: "header index does not match name" });
    }
    let mut records = Vec::new();
    let mut pos = SEG_HEADER;
    let damage = loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < RECORD_HEADER {
            break Some("torn record");
        }
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let payload_len = u32::from_le_bytes(len_bytes) as usize;
        if payload_len > MAX_RECORD_BYTES {
            break Some("bad length");
        }
        if rest.len() - RECORD_HEADER < payload_len {
            break Some("torn record");
        }
        let payload = &rest[RECORD_HEADER..RECORD_HEADER + payload_len];
        if record_crc(len_bytes, payload) != u32_at(rest, 4) {
            break Some("checksum mismatch");
        }
        records.push(data.slice(pos + RECORD_HEADER..pos + RECORD_HEADER + payload_len));
        pos += RECORD_HEADER + payload_len;
    };
    Ok(SegmentScan { records, len, damage: damage.map(|reason| (pos as u64, reason)) })
}

/// Reads a snapshot: `Err` for an unusable file, `Ok(Err(reason))` for one that is ours but corrupt.
fn read_snapshot(path: &Path, index: u64) -> Result<Result<Bytes, &'static str>, StorageError> {
    let data = fs::read(path).map_err(at(path))?;
    if data.len() < SNAP_HEADER {
        return Ok(Err("torn header"));
    }
    if check_header(path, &data, SNAP_MAGIC)? != index {
        return Err(StorageError::Format { path: path.to_path_buf(), reason: "header index does not match name" });
    }
    if u64_at(&data, 16) != (data.len() - SNAP_HEADER) as u64 {
        return Ok(Err("bad length"));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&data[8..24]);
    crc.update(&data[SNAP_HEADER..]);
    if crc.finalize() != u32_at(&data, 24) {
        return Ok(Err("checksum mismatch"));
    }
    Ok(Ok(Bytes::from(data).slice(SNAP_HEADER..)))
}

/// Checks magic and version and returns the index stored after them.
fn check_header(path: &Path, data: &[u8], magic: &[u8; 4]) -> Result<u64, StorageError> {
    let reason = if &data[..4] != magic {
        "bad magic"
    } else if u32_at(data, 4) != VERSION {
        "unsupported version"
    } else {
        return Ok(u64_at(data, 8));
    };
    Err(StorageError::Format { path: path.to_path_buf(), reason })
}

fn segment_header(first: u64) -> [u8; SEG_HEADER] {
    let mut header = [0; SEG_HEADER];
    header[..4].copy_from_slice(SEG_MAGIC);
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..].copy_from_slice(&first.to_le_bytes());
    header
}

fn snapshot_header(index: u64, payload: &[u8]) -> [u8; SNAP_HEADER] {
    let mut header = [0; SNAP_HEADER];
    header[..4].copy_from_slice(SNAP_MAGIC);
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&index.to_le_bytes());
    header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[8..24]);
    crc.update(payload);
    header[24..].copy_from_slice(&crc.finalize().to_le_bytes());
    header
}

fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    crc.finalize()
}

fn u32_at(data: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(data[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(data: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(data[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Creates a new, empty segment; its header goes through the write buffer like any record.
fn create_segment(dir: &Path, first: u64) -> Result<(PathBuf, File), StorageError> {
    let path = dir.join(segment_name(first));
    let file = OpenOptions::new().append(true).create_new(true).open(&path).map_err(at(&path))?;
    Ok((path, file))
}

fn file_len(path: &Path) -> Result<u64, StorageError> {
    Ok(fs::metadata(path).map_err(at(path))?.len())
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
