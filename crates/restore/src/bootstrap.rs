//! The RKE2 bootstrap entries of a fetched snapshot, read straight from its
//! bbolt file, so `vigil-restore rke2` can prove the server token before it
//! touches a node.
//!
//! Why read bbolt instead of starting an etcd on the snapshot: the RKE2
//! server node that runs the restore has no etcd or etcdctl of its own (RKE2
//! runs etcd as a static pod), and a scratch etcd would have to be fed
//! through `snapshot restore` first. The read needs only the file.
//!
//! The layout (go.etcd.io/bbolt, little-endian): two meta pages (0 and 1; the
//! valid one with the higher txid wins) give the page size and the root
//! bucket's page. A page is a 16-byte header (id u64, flags u16, count u16,
//! overflow u32) and `count` 16-byte elements: branch (pos u32, ksize u32,
//! child page u64) or leaf (flags u32, pos u32, ksize u32, vsize u32), the
//! key (and value) at `pos` bytes after the element. A bucket's value is its
//! root page u64 and sequence u64, its pages inline after it when the root
//! is 0. etcd's bucket `key` maps a revision (8-byte main, `_`, 8-byte sub, a
//! trailing `t` for a deletion) to a protobuf `mvccpb.KeyValue` (1: key,
//! 5: value); the newest revision of a key is its current value.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use vigil_archive::rke2_bootstrap::{Entries, PREFIX};

const MAGIC: u32 = 0xED0C_DAED;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// Deeper than any real tree; bounds a damaged file's loops.
const MAX_DEPTH: usize = 64;

/// Called with each leaf element's flags, key and value.
type Visit<'a> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), Damaged> + 'a;

/// What is wrong with a file that should be an etcd snapshot (a bbolt db).
#[derive(Debug, thiserror::Error)]
pub enum Damaged {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no valid bbolt meta page (not an etcd snapshot, or damaged)")]
    NoMeta,
    #[error("an implausible page size {0}")]
    PageSize(u64),
    #[error("page {0} is out of the file")]
    PageOutOfFile(u64),
    #[error("page {0} overflows the file")]
    PageOverflows(u64),
    #[error("the tree is deeper than any real one")]
    TooDeep,
    #[error("a page with flags {0:#x} in a tree")]
    PageFlags(u16),
    #[error("a damaged {0}")]
    Record(&'static str),
    #[error("it has no `key` bucket")]
    NoKeyBucket,
}

/// [`read_entries`] failed: the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("reading {} as an etcd snapshot: {why}", path.display())]
pub struct SnapshotReadError {
    pub path: std::path::PathBuf,
    #[source]
    pub why: Damaged,
}

struct Db {
    file: std::fs::File,
    page_size: u64,
    pages: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a 64, bbolt's meta checksum.
fn fnv64a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A meta page's (page size, root page, txid) when it is valid.
fn meta(page: &[u8]) -> Option<(u64, u64, u64)> {
    let m = page.get(HEADER..HEADER + 64)?;
    if u32_at(m, 0)? != MAGIC || fnv64a(&m[..56]) != u64_at(m, 56)? {
        return None;
    }
    Some((u64::from(u32_at(m, 8)?), u64_at(m, 16)?, u64_at(m, 48)?))
}

impl Db {
    fn page(&self, id: u64) -> Result<Vec<u8>, Damaged> {
        if id < 2 || id >= self.pages {
            return Err(Damaged::PageOutOfFile(id));
        }
        let mut head = vec![0u8; HEADER];
        self.file.read_exact_at(&mut head, id * self.page_size)?;
        let overflow = u64::from(u32_at(&head, 12).unwrap_or(0));
        if id + overflow >= self.pages {
            return Err(Damaged::PageOverflows(id));
        }
        let mut p = vec![0u8; ((1 + overflow) * self.page_size) as usize];
        self.file.read_exact_at(&mut p, id * self.page_size)?;
        Ok(p)
    }

    /// Every (flags, key, value) of the leaves under `page`, in order.
    fn walk(&self, page: &[u8], depth: usize, out: &mut Visit<'_>) -> Result<(), Damaged> {
        if depth > MAX_DEPTH {
            return Err(Damaged::TooDeep);
        }
        let bad = || Damaged::Record("page");
        let flags = u16_at(page, 8).ok_or_else(bad)?;
        let count = usize::from(u16_at(page, 10).ok_or_else(bad)?);
        for i in 0..count {
            let e = HEADER + i * ELEMENT;
            if flags & BRANCH != 0 {
                let child = u64_at(page, e + 8).ok_or_else(bad)?;
                let p = self.page(child)?;
                self.walk(&p, depth + 1, out)?;
            } else if flags & LEAF != 0 {
                let f = u32_at(page, e).ok_or_else(bad)?;
                let pos = e + u32_at(page, e + 4).ok_or_else(bad)? as usize;
                let ks = u32_at(page, e + 8).ok_or_else(bad)? as usize;
                let vs = u32_at(page, e + 12).ok_or_else(bad)? as usize;
                let k = page.get(pos..pos + ks).ok_or_else(bad)?;
                let v = page.get(pos + ks..pos + ks + vs).ok_or_else(bad)?;
                out(f, k, v)?;
            } else {
                return Err(Damaged::PageFlags(flags));
            }
        }
        Ok(())
    }

    /// The leaves of a bucket, from its value in the parent.
    fn bucket(&self, value: &[u8], out: &mut Visit<'_>) -> Result<(), Damaged> {
        let root = u64_at(value, 0).ok_or(Damaged::Record("bucket"))?;
        if root == 0 {
            self.walk(&value[16..], 0, out)
        } else {
            let p = self.page(root)?;
            self.walk(&p, 0, out)
        }
    }
}

/// Reads a protobuf varint at `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*at)?;
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Fields 1 (key) and 5 (value) of an `mvccpb.KeyValue`.
fn key_value(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    let mut at = 0;
    while at < b.len() {
        let tag = varint(b, &mut at)?;
        match tag & 7 {
            0 => {
                varint(b, &mut at)?;
            }
            2 => {
                let n = varint(b, &mut at)? as usize;
                let f = b.get(at..at.checked_add(n)?)?;
                at += n;
                match tag >> 3 {
                    1 => key = f,
                    5 => value = f,
                    _ => {}
                }
            }
            1 => at += 8,
            5 => at += 4,
            _ => return None,
        }
    }
    Some((key, value))
}

/// The current `/bootstrap/` keys and values of an etcd snapshot file.
pub fn read_entries(path: &Path) -> Result<Entries, SnapshotReadError> {
    read(path).map_err(|why| SnapshotReadError {
        path: path.to_path_buf(),
        why,
    })
}

fn read(path: &Path) -> Result<Entries, Damaged> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut first = vec![0u8; 4096.min(len as usize)];
    file.read_exact_at(&mut first, 0)?;
    // Page 0 names the page size; page 1 sits one page further.
    let size0 = meta(&first).map(|m| m.0).unwrap_or(4096);
    let mut second = vec![0u8; HEADER + 64];
    let metas = [
        meta(&first),
        file.read_exact_at(&mut second, size0)
            .ok()
            .and_then(|_| meta(&second)),
    ];
    let (page_size, root, _) = metas
        .into_iter()
        .flatten()
        .max_by_key(|m| m.2)
        .ok_or(Damaged::NoMeta)?;
    if !(512..=(1 << 20)).contains(&page_size) {
        return Err(Damaged::PageSize(page_size));
    }
    let db = Db {
        file,
        page_size,
        pages: len / page_size,
    };
    let mut key_bucket = None;
    let rootp = db.page(root)?;
    db.walk(&rootp, 0, &mut |f, k, v| {
        if f & BUCKET_LEAF != 0 && k == b"key" {
            key_bucket = Some(v.to_vec());
        }
        Ok(())
    })?;
    let key_bucket = key_bucket.ok_or(Damaged::NoKeyBucket)?;
    // Revisions come in order: the last one of a key is its current state.
    let mut current: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    db.bucket(&key_bucket, &mut |_, rev, v| {
        let (k, value) = key_value(v).ok_or(Damaged::Record("key-value record"))?;
        if k.starts_with(PREFIX.as_bytes()) {
            let deleted = rev.len() == 18 && rev[17] == b't';
            current.insert(k.to_vec(), (!deleted).then(|| value.to_vec()));
        }
        Ok(())
    })?;
    Ok(current
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_value_reads_the_fields_etcd_writes() {
        // key "/bootstrap/ab", create 2, mod 3, version 1, value "v".
        let mut b = vec![0x0a, 13];
        b.extend_from_slice(b"/bootstrap/ab");
        b.extend_from_slice(&[0x10, 2, 0x18, 3, 0x20, 1, 0x2a, 1, b'v']);
        assert_eq!(key_value(&b), Some((&b"/bootstrap/ab"[..], &b"v"[..])));
        assert_eq!(key_value(&[0x0a, 5, b'x']), None);
    }

    #[test]
    fn a_file_that_is_no_bbolt_is_named() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), vec![7u8; 8192]).unwrap();
        let e = read_entries(t.path()).unwrap_err();
        assert!(matches!(e.why, Damaged::NoMeta), "{e}");
        assert!(e.to_string().contains("no valid bbolt meta page"), "{e}");
    }
}
