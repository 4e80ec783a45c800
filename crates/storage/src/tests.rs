//! Tests of the durable log: roundtrips, checkpoints, rotation, and recovery from torn, corrupt and foreign files.

use super::*;
use tempfile::TempDir;

fn fast() -> LogOptions {
    LogOptions { segment_bytes: 1 << 20, fsync: false }
}

fn open(dir: &Path, opts: LogOptions) -> (Log, Recovered) {
    Log::open(dir, opts).expect("open")
}

fn rec(i: usize) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(i % 17)).into_bytes()
}

fn bytes(records: &[Vec<u8>]) -> Vec<Bytes> {
    records.iter().map(|r| Bytes::copy_from_slice(r)).collect()
}

fn append_all(log: &mut Log, records: &[Vec<u8>]) {
    for r in records {
        log.append(r).unwrap();
    }
}

/// Paths in `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    paths.sort();
    paths
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn flip(path: &Path, offset: u64) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize] ^= 0x5a;
    fs::write(path, data).unwrap();
}

fn encoded_len(record: &[u8]) -> u64 {
    (RECORD_HEADER + record.len()) as u64
}

/// Offsets at which each record ends in a segment holding `records` from its start.
fn record_ends(records: &[Vec<u8>]) -> Vec<u64> {
    let mut end = SEG_HEADER as u64;
    records
        .iter()
        .map(|r| {
            end += encoded_len(r);
            end
        })
        .collect()
}

#[test]
fn append_sync_reopen_roundtrip() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("nested/log");
    let (mut log, recovered) = open(&dir, LogOptions::default());
    assert_eq!(recovered, Recovered::default());
    let records = vec![b"a".to_vec(), vec![], vec![7; 10_000], b"last".to_vec()];
    append_all(&mut log, &records);
    log.sync().unwrap();
    log.sync().unwrap();
    let stats = log.stats();
    assert_eq!((stats.records_appended, stats.syncs, stats.checkpoints), (4, 1, 0));
    assert_eq!(stats.fsyncs, 2, "open: the directory (with the new segment); sync: the segment");
    assert_eq!(stats.bytes_written, SEG_HEADER as u64 + records.iter().map(|r| encoded_len(r)).sum::<u64>());
    drop(log);

    let (mut log, recovered) = open(&dir, LogOptions::default());
    assert_eq!(recovered, Recovered { checkpoint: None, records: bytes(&records), damage: None });
    log.append(b"more").unwrap();
    log.sync().unwrap();
    assert_eq!(log.stats().fsyncs, 3, "open: the recovered segment and the directory; sync: the segment");
    drop(log);
    let (_, recovered) = open(&dir, LogOptions::default());
    assert_eq!(recovered.records.len(), 5);
    assert_eq!(recovered.records[4], "more");
}

#[test]
fn unsynced_appends_are_lost_like_in_a_crash() {
    let tmp = TempDir::new().unwrap();
    let (mut log, _) = open(tmp.path(), fast());
    log.append(b"durable").unwrap();
    log.sync().unwrap();
    log.append(b"pending").unwrap();
    drop(log);
    let (_, recovered) = open(tmp.path(), fast());
    assert_eq!(recovered.records, vec![Bytes::from_static(b"durable")]);
    assert_eq!(recovered.damage, None);
}

#[test]
fn checkpoint_replaces_earlier_records() {
    let tmp = TempDir::new().unwrap();
    let (mut log, _) = open(tmp.path(), LogOptions::default());
    log.append(b"a").unwrap();
    log.sync().unwrap();
    log.append(b"b").unwrap();
    log.checkpoint(b"snap-1").unwrap();
    assert_eq!(log.stats().fsyncs, 2 + 3, "open: dir; sync: segment; checkpoint: pending b, snapshot, dir");
    log.append(b"c").unwrap();
    log.sync().unwrap();
    drop(log);

    let (_, recovered) = open(tmp.path(), LogOptions::default());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"snap-1"[..]));
    assert_eq!(recovered.records, vec![Bytes::from_static(b"c")]);
    assert_eq!(files(tmp.path(), ".snap"), vec![tmp.path().join(snapshot_name(2))]);
    assert_eq!(files(tmp.path(), ".seg"), vec![tmp.path().join(segment_name(2))]);
}

#[test]
fn multiple_checkpoints_keep_only_the_latest() {
    let tmp = TempDir::new().unwrap();
    let (mut log, _) = open(tmp.path(), fast());
    let mut index = 0;
    for round in 0..5 {
        let records: Vec<_> = (0..round * 3).map(rec).collect();
        append_all(&mut log, &records);
        index += records.len();
        log.checkpoint(format!("snap-{round}").as_bytes()).unwrap();
    }
    // Back-to-back checkpoints at the same index reuse the fresh segment and overwrite the snapshot.
    log.checkpoint(b"snap-again").unwrap();
    let tail: Vec<_> = (100..110).map(rec).collect();
    append_all(&mut log, &tail);
    log.sync().unwrap();
    assert_eq!(log.stats().checkpoints, 6);
    drop(log);

    let (_, recovered) = open(tmp.path(), fast());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"snap-again"[..]));
    assert_eq!(recovered.records, bytes(&tail));
    assert_eq!(files(tmp.path(), ".snap"), vec![tmp.path().join(snapshot_name(index as u64))]);
    assert_eq!(files(tmp.path(), ".seg"), vec![tmp.path().join(segment_name(index as u64))]);
}

#[test]
fn segments_rotate_and_recover_in_order() {
    let tmp = TempDir::new().unwrap();
    let opts = LogOptions { segment_bytes: 256, fsync: false };
    let (mut log, _) = open(tmp.path(), opts);
    let records: Vec<_> = (0..500).map(rec).collect();
    for (i, r) in records.iter().enumerate() {
        log.append(r).unwrap();
        if i % 7 == 0 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    drop(log);
    let segments = files(tmp.path(), ".seg");
    assert!(segments.len() > 50, "{} segments", segments.len());
    assert!(segments.iter().all(|p| fs::metadata(p).unwrap().len() <= 256));

    let (mut log, recovered) = open(tmp.path(), opts);
    assert_eq!(recovered.records, bytes(&records));
    assert_eq!(recovered.damage, None);
    log.checkpoint(b"snap").unwrap();
    assert_eq!(files(tmp.path(), ".seg"), vec![tmp.path().join(segment_name(500))]);
    let more: Vec<_> = (0..40).map(rec).collect();
    append_all(&mut log, &more);
    log.sync().unwrap();
    drop(log);
    let (_, recovered) = open(tmp.path(), opts);
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"snap"[..]));
    assert_eq!(recovered.records, bytes(&more));
}

#[test]
fn torn_tail_at_every_cut_point() {
    let tmp = TempDir::new().unwrap();
    let template = tmp.path().join("template");
    let records: Vec<_> = (0..6).map(rec).collect();
    let (mut log, _) = open(&template, fast());
    append_all(&mut log, &records);
    log.sync().unwrap();
    drop(log);
    let seg_name = segment_name(0);
    let ends = record_ends(&records);
    let full = *ends.last().unwrap();
    assert_eq!(fs::metadata(template.join(&seg_name)).unwrap().len(), full);

    for cut in 0..=full {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&template, &dir);
        let segment = dir.join(&seg_name);
        truncate(&segment, cut);
        let (mut log, recovered) = open(&dir, fast());
        let survivors = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(recovered.records, bytes(&records[..survivors]), "cut {cut}");
        let valid = if cut < SEG_HEADER as u64 { 0 } else { ends[..survivors].last().copied().unwrap_or(16) };
        if cut == valid {
            assert_eq!(recovered.damage, None, "cut {cut}");
        } else {
            let damage = recovered.damage.expect("damage reported");
            assert_eq!((damage.segment, damage.offset, damage.discarded_bytes), (segment.clone(), valid, cut - valid));
            let expected_reason = if cut < SEG_HEADER as u64 { "torn header" } else { "torn record" };
            assert_eq!(damage.reason, expected_reason, "cut {cut}");
        }
        log.append(b"after").unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, recovered) = open(&dir, fast());
        let mut expected = bytes(&records[..survivors]);
        expected.push(Bytes::from_static(b"after"));
        assert_eq!(recovered.records, expected, "cut {cut}");
        assert_eq!(recovered.damage, None, "cut {cut}");
    }
}

#[test]
fn corrupt_last_record_is_a_checksum_mismatch() {
    let tmp = TempDir::new().unwrap();
    let records: Vec<_> = (0..5).map(rec).collect();
    let (mut log, _) = open(tmp.path(), fast());
    append_all(&mut log, &records);
    log.sync().unwrap();
    drop(log);
    let segment = tmp.path().join(segment_name(0));
    let ends = record_ends(&records);
    flip(&segment, ends[4] - 1);

    let (_, recovered) = open(tmp.path(), fast());
    assert_eq!(recovered.records, bytes(&records[..4]));
    let expected = Damage {
        segment: segment.clone(),
        offset: ends[3],
        discarded_bytes: ends[4] - ends[3],
        reason: "checksum mismatch",
    };
    assert_eq!(recovered.damage, Some(expected));
    assert_eq!(fs::metadata(&segment).unwrap().len(), ends[3], "damaged tail truncated away");
}

#[test]
fn corrupt_middle_record_discards_everything_after_it() {
    let tmp = TempDir::new().unwrap();
    let opts = LogOptions { segment_bytes: 128, fsync: false };
    let records: Vec<_> = (0..60).map(rec).collect();
    let (mut log, _) = open(tmp.path(), opts);
    append_all(&mut log, &records);
    log.sync().unwrap();
    drop(log);
    let segments = files(tmp.path(), ".seg");
    assert!(segments.len() > 5);
    let victim = &segments[2];
    let first = parse_index(victim.file_name().unwrap().to_str().unwrap(), "log-", ".seg").unwrap() as usize;
    let next_first = parse_index(segments[3].file_name().unwrap().to_str().unwrap(), "log-", ".seg").unwrap();
    let ends = record_ends(&records[first..next_first as usize]);
    assert!(ends.len() >= 2);
    flip(victim, ends[0] + 9); // second payload byte of the victim's second record

    let (mut log, recovered) = open(tmp.path(), opts);
    assert_eq!(recovered.records, bytes(&records[..first + 1]));
    let damage = recovered.damage.unwrap();
    let later_bytes: u64 = segments[3..].iter().map(|p| fs::metadata(p).map_or(0, |m| m.len())).sum();
    assert_eq!(later_bytes, 0, "later segments removed");
    assert_eq!((&damage.segment, damage.offset, damage.reason), (victim, ends[0], "checksum mismatch"));
    assert!(damage.discarded_bytes > *ends.last().unwrap() - ends[0]);
    assert_eq!(files(tmp.path(), ".seg"), segments[..3].to_vec());
    log.append(b"after").unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, recovered) = open(tmp.path(), opts);
    assert_eq!(recovered.records.len(), first + 2);
    assert_eq!(recovered.damage, None);
}

#[test]
fn absurd_length_is_bad_length() {
    let tmp = TempDir::new().unwrap();
    let records: Vec<_> = (0..3).map(rec).collect();
    let (mut log, _) = open(tmp.path(), fast());
    append_all(&mut log, &records);
    log.sync().unwrap();
    drop(log);
    let segment = tmp.path().join(segment_name(0));
    let ends = record_ends(&records);
    let mut data = fs::read(&segment).unwrap();
    data[ends[1] as usize..ends[1] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&segment, data).unwrap();
    let (_, recovered) = open(tmp.path(), fast());
    assert_eq!(recovered.records, bytes(&records[..2]));
    assert_eq!(recovered.damage.unwrap().reason, "bad length");
}

#[test]
fn missing_segment_in_the_middle_is_damage() {
    let tmp = TempDir::new().unwrap();
    let opts = LogOptions { segment_bytes: 128, fsync: false };
    let records: Vec<_> = (0..40).map(rec).collect();
    let (mut log, _) = open(tmp.path(), opts);
    append_all(&mut log, &records);
    log.sync().unwrap();
    drop(log);
    let segments = files(tmp.path(), ".seg");
    fs::remove_file(&segments[2]).unwrap();
    let kept = parse_index(segments[2].file_name().unwrap().to_str().unwrap(), "log-", ".seg").unwrap() as usize;
    let (_, recovered) = open(tmp.path(), opts);
    assert_eq!(recovered.records, bytes(&records[..kept]));
    let damage = recovered.damage.unwrap();
    assert_eq!((&damage.segment, damage.offset, damage.reason), (&segments[3], 0, "missing records"));
    assert_eq!(files(tmp.path(), ".seg"), segments[..2].to_vec());
}

#[test]
fn foreign_files_are_errors() {
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join("notes.txt"), b"not ours, ignored").unwrap();
    fs::write(tmp.path().join(segment_name(0)), b"this is not a quorate log segment").unwrap();
    let err = Log::open(tmp.path(), fast()).unwrap_err();
    assert!(matches!(err, StorageError::Format { reason: "bad magic", .. }), "{err}");
    assert!(err.to_string().contains(&segment_name(0)), "{err}");

    let mut header = segment_header(0);
    header[4] = 9;
    fs::write(tmp.path().join(segment_name(0)), header).unwrap();
    let err = Log::open(tmp.path(), fast()).unwrap_err();
    assert!(matches!(err, StorageError::Format { reason: "unsupported version", .. }), "{err}");

    fs::write(tmp.path().join(segment_name(0)), segment_header(5)).unwrap();
    let err = Log::open(tmp.path(), fast()).unwrap_err();
    assert!(matches!(err, StorageError::Format { reason: "header index does not match name", .. }), "{err}");

    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join(snapshot_name(3)), vec![0xab; 64]).unwrap();
    let err = Log::open(tmp.path(), fast()).unwrap_err();
    assert!(matches!(err, StorageError::Format { reason: "bad magic", .. }), "{err}");

    // Segments without a snapshot must start at record 0, or records were lost.
    let tmp = TempDir::new().unwrap();
    fs::write(tmp.path().join(segment_name(7)), segment_header(7)).unwrap();
    let err = Log::open(tmp.path(), fast()).unwrap_err();
    assert!(matches!(err, StorageError::Unrecoverable { .. }), "{err}");
}

#[test]
fn leftover_temp_snapshot_is_ignored_and_deleted() {
    let tmp = TempDir::new().unwrap();
    let (mut log, _) = open(tmp.path(), fast());
    log.append(b"a").unwrap();
    log.checkpoint(b"snap").unwrap();
    log.append(b"b").unwrap();
    log.sync().unwrap();
    drop(log);
    let leftover = tmp.path().join(format!("{}.tmp", snapshot_name(2)));
    fs::write(&leftover, b"QSNP torn").unwrap();

    let (_, recovered) = open(tmp.path(), fast());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"snap"[..]));
    assert_eq!(recovered.records, vec![Bytes::from_static(b"b")]);
    assert!(!leftover.exists());
}

#[test]
fn corrupt_snapshot_falls_back_only_to_a_complete_older_one() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("log");
    let saved = tmp.path().join("saved");
    let (mut log, _) = open(&dir, fast());
    append_all(&mut log, &[rec(0), rec(1)]);
    log.checkpoint(b"old").unwrap();
    append_all(&mut log, &[rec(2), rec(3)]);
    log.sync().unwrap();
    copy_dir(&dir, &saved);
    log.checkpoint(b"new").unwrap();
    log.append(&rec(4)).unwrap();
    log.sync().unwrap();
    drop(log);
    let new_snapshot = dir.join(snapshot_name(4));
    flip(&new_snapshot, SNAP_HEADER as u64 + 1);

    // Without the older files nothing can stand in for the corrupt snapshot; the directory is left untouched.
    let before = files(&dir, "");
    let err = Log::open(&dir, fast()).unwrap_err();
    assert!(matches!(err, StorageError::Unrecoverable { ref path, .. } if *path == new_snapshot), "{err}");
    assert_eq!(files(&dir, ""), before);

    // As after a crash between renaming the new snapshot and deleting the old files.
    copy_dir(&saved, &dir);
    let (mut log, recovered) = open(&dir, fast());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"old"[..]));
    assert_eq!(recovered.records, bytes(&[rec(2), rec(3), rec(4)]));
    assert_eq!(recovered.damage, None);
    log.checkpoint(b"newer").unwrap();
    drop(log);
    let (_, recovered) = open(&dir, fast());
    assert_eq!(recovered.checkpoint.as_deref(), Some(&b"newer"[..]));
    assert!(recovered.records.is_empty());
    assert_eq!(files(&dir, ".snap"), vec![dir.join(snapshot_name(5))]);
}

#[test]
fn oversized_record_is_rejected_without_poisoning() {
    let tmp = TempDir::new().unwrap();
    let (mut log, _) = open(tmp.path(), fast());
    let err = log.append(&vec![0; MAX_RECORD_BYTES + 1]).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { len } if len == MAX_RECORD_BYTES + 1));
    log.append(b"fine").unwrap();
    log.sync().unwrap();
}

/// xorshift64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        (0..self.below(max_len + 1)).map(|_| self.below(256) as u8).collect()
    }
}

/// The segments on disk with their first index and the end offsets of the model records each holds (the last
/// segment's list includes records that were still buffered and so never reached the file).
fn layout(dir: &Path, base: u64, records: &[Vec<u8>]) -> Vec<(u64, PathBuf, Vec<u64>)> {
    let segments: Vec<(u64, PathBuf)> = files(dir, ".seg")
        .into_iter()
        .map(|p| (parse_index(p.file_name().unwrap().to_str().unwrap(), "log-", ".seg").unwrap(), p))
        .collect();
    let end = base + records.len() as u64;
    (0..segments.len())
        .map(|k| {
            let (first, path) = segments[k].clone();
            let next = segments.get(k + 1).map_or(end, |s| s.0);
            (first, path, record_ends(&records[(first - base) as usize..(next - base) as usize]))
        })
        .collect()
}

#[test]
fn randomized_crashes_recover_a_prefix() {
    for seed in 1..=60u64 {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let opts = LogOptions { segment_bytes: 64 + rng.below(400), fsync: false };
        let mut checkpoint: Option<Vec<u8>> = None;
        let mut base = 0u64;
        // The model: records appended after the checkpoint; `synced` of them were synced.
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut synced = 0usize;
        let mut expect_clean = true;
        for round in 0..10 {
            let ctx = format!("seed {seed} round {round}");
            let (mut log, recovered) = open(dir, opts);
            assert_eq!(recovered.checkpoint.as_deref(), checkpoint.as_deref(), "{ctx}");
            assert_eq!(recovered.records, bytes(&records), "{ctx}");
            if expect_clean {
                assert_eq!(recovered.damage, None, "{ctx}");
            }
            for _ in 0..rng.below(80) {
                match rng.below(25) {
                    0 => {
                        let snapshot = rng.bytes(300);
                        log.checkpoint(&snapshot).unwrap();
                        checkpoint = Some(snapshot);
                        base += records.len() as u64;
                        records.clear();
                        synced = 0;
                    }
                    1..=5 => {
                        log.sync().unwrap();
                        synced = records.len();
                    }
                    _ => {
                        let record = rng.bytes(120);
                        log.append(&record).unwrap();
                        records.push(record);
                    }
                }
            }
            drop(log);

            // Crash: damage one segment at a random point `pos` (truncate there or flip the byte there).
            let layout = layout(dir, base, &records);
            let mode = rng.below(4);
            let k = if mode == 0 { layout.len() - 1 } else { rng.below(layout.len() as u64) as usize };
            let (first, path, ends) = &layout[k];
            let len = fs::metadata(path).unwrap().len();
            let pos = match mode {
                0 => len,
                3 if len > SEG_HEADER as u64 => {
                    let pos = SEG_HEADER as u64 + rng.below(len - SEG_HEADER as u64);
                    flip(path, pos);
                    pos
                }
                _ => {
                    let pos = rng.below(len + 1);
                    truncate(path, pos);
                    pos
                }
            };
            expect_clean = mode == 0;
            let survivors = (first - base) as usize + ends.iter().filter(|&&end| end <= pos).count();

            // Synced records lie before the damage point unless the damage hit them.
            if synced > 0 {
                let (j, synced_end) = layout
                    .iter()
                    .enumerate()
                    .find_map(|(j, (f, _, e))| {
                        let i = (synced as u64 + base - 1).checked_sub(*f)? as usize;
                        e.get(i).map(|end| (j, *end))
                    })
                    .unwrap();
                if k > j || (k == j && pos >= synced_end) {
                    assert!(survivors >= synced, "{ctx}");
                }
            }
            records.truncate(survivors);
            synced = survivors;
        }
    }
}
