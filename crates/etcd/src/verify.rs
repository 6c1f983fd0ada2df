//! Verification of etcd's snapshot stream on the fly.
//!
//! etcd streams the bbolt file and then the sha256 of everything before it.
//! The trailer may arrive inside the last data chunk or on its own, so the
//! last 32 bytes of the whole stream are held back and compared at the end.

use sha2::{Digest, Sha256};

pub const TRAILER_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("snapshot stream ended after {total} bytes, too short to hold a database and its sha256 trailer (truncated stream)")]
    TooShort { total: u64 },
    #[error("snapshot stream is {total} bytes, but a valid one is 32 bytes past a multiple of 512 (truncated or padded stream)")]
    SizeRule { total: u64 },
    #[error("snapshot sha256 mismatch: etcd's trailer says {expected}, the received bytes hash to {actual} (corrupted stream)")]
    HashMismatch { expected: String, actual: String },
}

/// The digests of a stream that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// All bytes streamed, trailer included.
    pub total: u64,
    /// sha256 of the database (equal to etcd's trailer).
    pub db_sha256: [u8; 32],
    /// sha256 of every byte streamed, trailer included.
    pub stream_sha256: [u8; 32],
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotVerifier {
    hasher: Sha256,
    tail: [u8; TRAILER_LEN],
    tail_len: usize,
    total: u64,
}

impl SnapshotVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if chunk.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail[..self.tail_len]);
            let (body, last) = chunk.split_at(chunk.len() - TRAILER_LEN);
            self.hasher.update(body);
            self.tail.copy_from_slice(last);
            self.tail_len = TRAILER_LEN;
        } else {
            let mut buf = [0u8; 2 * TRAILER_LEN];
            buf[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            let n = self.tail_len + chunk.len();
            buf[self.tail_len..n].copy_from_slice(chunk);
            let keep = n.min(TRAILER_LEN);
            self.hasher.update(&buf[..n - keep]);
            self.tail[..keep].copy_from_slice(&buf[n - keep..n]);
            self.tail_len = keep;
        }
    }

    /// Checks the size rule and the trailer. Both digests come from one pass:
    /// the hasher state after the database is cloned before the trailer is fed.
    pub fn finish(self) -> Result<Verified, VerifyError> {
        if self.total < 512 + TRAILER_LEN as u64 {
            return Err(VerifyError::TooShort { total: self.total });
        }
        if self.total % 512 != TRAILER_LEN as u64 {
            return Err(VerifyError::SizeRule { total: self.total });
        }
        let db: [u8; 32] = self.hasher.clone().finalize().into();
        if db != self.tail {
            return Err(VerifyError::HashMismatch {
                expected: hex::encode(self.tail),
                actual: hex::encode(db),
            });
        }
        let mut h = self.hasher;
        h.update(self.tail);
        Ok(Verified {
            total: self.total,
            db_sha256: db,
            stream_sha256: h.finalize().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(db_len: usize) -> Vec<u8> {
        let mut db: Vec<u8> = (0..db_len).map(|i| (i * 31 % 251) as u8).collect();
        let sum = Sha256::digest(&db);
        db.extend_from_slice(&sum);
        db
    }

    fn feed(bytes: &[u8], sizes: &[usize]) -> Result<Verified, VerifyError> {
        let mut v = SnapshotVerifier::new();
        let mut off = 0;
        let mut i = 0;
        while off < bytes.len() {
            let n = sizes[i % sizes.len()].min(bytes.len() - off);
            v.update(&bytes[off..off + n]);
            off += n;
            i += 1;
        }
        v.finish()
    }

    #[test]
    fn accepts_any_chunking() {
        let s = stream(4096);
        for sizes in [
            &[32768][..],
            &[1],
            &[31, 33],
            &[4096, 32],
            &[7, 4000, 5],
            &[4128],
        ] {
            let v = feed(&s, sizes).unwrap();
            assert_eq!(v.total, s.len() as u64);
            assert_eq!(&v.db_sha256[..], &s[4096..]);
            assert_eq!(&v.stream_sha256[..], &Sha256::digest(&s)[..]);
        }
    }

    #[test]
    fn catches_flip_truncation_and_size() {
        let mut s = stream(4096);
        s[1000] ^= 0x40;
        assert!(matches!(
            feed(&s, &[100]),
            Err(VerifyError::HashMismatch { .. })
        ));
        let s = stream(4096);
        assert!(matches!(
            feed(&s[..s.len() - 1], &[100]),
            Err(VerifyError::SizeRule { .. })
        ));
        assert!(matches!(
            feed(&s[..2048 + 32], &[100]),
            Err(VerifyError::HashMismatch { .. })
        ));
        assert!(matches!(
            feed(&s[..10], &[3]),
            Err(VerifyError::TooShort { .. })
        ));
    }
}
