//! Does an RKE2 server token open the cluster's bootstrap data?
//!
//! RKE2 (k3s code, `pkg/cluster/storage.go` and `encrypt.go`) keeps its
//! bootstrap data (CA certificates and keys, the secrets encryption config...)
//! in etcd under `/bootstrap/<hash>`, sealed with the server token. A restore
//! with any other token fails when rke2 starts ("bootstrap data already found
//! and encrypted with different token"), after the servers are already
//! stopped. So vigil proves the token first. The format, from the k3s source:
//!
//! - the passphrase is the token's *password*: a full token
//!   `K10<sha256 of the CA, 64 hex>::<user>:<password>` gives `<password>`, a
//!   bare token is the password itself (k3s `normalizeToken`);
//! - the key is `/bootstrap/` + the first 12 hex digits of sha256(passphrase);
//! - the value is `<salt>:<base64(nonce ‖ AES-256-GCM ciphertext ‖ tag)>`, the
//!   AES key being PBKDF2-HMAC-SHA1(passphrase, salt bytes, 4096 rounds, 32
//!   bytes), the nonce 12 bytes, no additional data;
//! - a key hashed from the empty string is a legacy entry k3s re-seals with
//!   the token on its next start: any token does.
//!
//! Errors name key hashes, never the token.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;

/// Where k3s keeps its bootstrap data in etcd.
pub const PREFIX: &str = "/bootstrap/";

const PBKDF2_ROUNDS: u32 = 4096;
const CA_HASH_LEN: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    #[error("the snapshot holds no {PREFIX} entry: it is not from an RKE2/k3s server with embedded etcd (plain etcd, or k3s on an external datastore), so there is no token to prove")]
    NoEntry,
    #[error("the token is not a k3s server token (K10<ca-hash>::server:<password>, or the bare password): {0}")]
    BadToken(&'static str),
    #[error("the token's bootstrap key is {PREFIX}{token_hash}, but the snapshot holds {found}: the server token was changed (rotated) on the cluster, or this is another cluster's token. Fetch the current token from a server node's /var/lib/rancher/rke2/server/token")]
    Rotated { token_hash: String, found: String },
    #[error("{PREFIX}{hash} does not decrypt with the token ({why}): the entry is damaged or was sealed with another token of the same hash")]
    WrongToken { hash: String, why: &'static str },
}

/// Bootstrap entries as read from etcd or a snapshot: (key, value).
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The proof: which entry the token opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub key: String,
    /// The legacy entry sealed with the empty string (k3s re-seals it).
    pub legacy_empty: bool,
}

/// The passphrase k3s derives from a token (its `normalizeToken`).
pub fn passphrase(token: &str) -> Result<&str, BootstrapError> {
    if token.is_empty() {
        return Err(BootstrapError::BadToken("it is empty"));
    }
    let creds = match token.strip_prefix("K10") {
        // A bare token is the password (k3s prefixes it with `K10:::`).
        None if is_bootstrap_token(token) => {
            return Err(BootstrapError::BadToken(
                "it is a kubeadm-style agent join token, not the server token",
            ))
        }
        None => return Ok(token),
        Some(rest) => match rest.split_once("::") {
            Some((ca, creds)) => {
                if !ca.is_empty() && ca.len() != CA_HASH_LEN {
                    return Err(BootstrapError::BadToken(
                        "the CA hash after K10 is not 64 hex digits",
                    ));
                }
                creds
            }
            None => rest,
        },
    };
    if is_bootstrap_token(creds) {
        return Err(BootstrapError::BadToken(
            "it is a kubeadm-style agent join token, not the server token",
        ));
    }
    match creds.split_once(':') {
        Some((_, pw)) if !pw.is_empty() => Ok(pw),
        _ => Err(BootstrapError::BadToken(
            "no <user>:<password> after the CA hash",
        )),
    }
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`, which k3s does not take as a password.
fn is_bootstrap_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(s.split_once('.'), Some((a, b)) if ok(a, 6) && ok(b, 16))
}

/// The 12 hex digits naming a passphrase's entry (never the passphrase).
pub fn key_hash(passphrase: &str) -> String {
    hex::encode(Sha256::digest(passphrase.as_bytes()))[..12].to_string()
}

/// The etcd key of a passphrase's bootstrap entry.
pub fn storage_key(passphrase: &str) -> String {
    format!("{PREFIX}{}", key_hash(passphrase))
}

fn aead_key(passphrase: &str, salt: &[u8]) -> LessSafeKey {
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA1,
        NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN),
        salt,
        passphrase.as_bytes(),
        &mut key,
    );
    // A 32-byte key is always a valid AES-256 key.
    #[allow(clippy::unwrap_used)]
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap())
}

/// Seals `plaintext` as k3s does (its salt is 16 random hex characters).
pub fn seal(passphrase: &str, salt: &str, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    // Sealing fails only for inputs beyond GCM's 64 GiB limit.
    #[allow(clippy::unwrap_used)]
    aead_key(passphrase, salt.as_bytes())
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .unwrap();
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&buf);
    format!(
        "{salt}:{}",
        base64::engine::general_purpose::STANDARD.encode(sealed)
    )
    .into_bytes()
}

/// Opens a bootstrap value with a passphrase.
pub fn open(passphrase: &str, value: &[u8]) -> Result<Vec<u8>, &'static str> {
    let colon = value
        .iter()
        .position(|b| *b == b':')
        .ok_or("not <salt>:<base64>")?;
    let (salt, b64) = (&value[..colon], &value[colon + 1..]);
    let data = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "not base64 after the salt")?;
    if data.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err("too short for a nonce and a tag");
    }
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let mut buf = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce")?;
    let plain = aead_key(passphrase, salt)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| "authentication failed")?;
    Ok(plain.to_vec())
}

/// Proves `token` against the `/bootstrap/` entries of a snapshot or a
/// cluster (key, value): the token's entry must be there and open with it.
pub fn check(token: &str, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Opened, BootstrapError> {
    let ours: Vec<&(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX.as_bytes()))
        .collect();
    if ours.is_empty() {
        return Err(BootstrapError::NoEntry);
    }
    let pass = passphrase(token)?;
    let want = storage_key(pass);
    let legacy = storage_key("");
    let (pass, entry, legacy_empty) =
        if let Some(e) = ours.iter().find(|(k, _)| *k == want.as_bytes()) {
            (pass, e, false)
        } else if let Some(e) = ours.iter().find(|(k, _)| *k == legacy.as_bytes()) {
            ("", e, true)
        } else {
            return Err(BootstrapError::Rotated {
                token_hash: key_hash(pass),
                found: ours
                    .iter()
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
    open(pass, &entry.1).map_err(|why| BootstrapError::WrongToken {
        hash: key_hash(pass),
        why,
    })?;
    Ok(Opened {
        key: String::from_utf8_lossy(&entry.0).into_owned(),
        legacy_empty,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Computed outside vigil with python3 (`hashlib.pbkdf2_hmac("sha1", ...,
    /// 4096, 32)` and `cryptography`'s AESGCM), following k3s `encrypt`.
    const KAT_PASSWORD: &str = "vigil-kat-password";
    const KAT_HASH: &str = "3d4b4fca8c37";
    const KAT_SALT: &str = "0123456789abcdef";
    const KAT_PLAIN: &[u8] =
        br#"{"ServerCA":{"Timestamp":"2026-01-01T00:00:00Z","Content":"a2F0"}}"#;
    const KAT_SEALED: &str = "0123456789abcdef:AAECAwQFBgcICQoL5PRIXU9ORVFWXdVkZLw+Ag/nqj0XAcNMMrK0nkPlvMQ/xIr24RIgDNxajouFKhqzHC4P93Kml8O58TyI9UN97+ZE9KKIjPU71VBDWS80174e+w==";

    fn nonce() -> [u8; 12] {
        core::array::from_fn(|i| i as u8)
    }

    #[test]
    fn seal_and_open_match_the_known_answer() {
        assert_eq!(key_hash(KAT_PASSWORD), KAT_HASH);
        let sealed = seal(KAT_PASSWORD, KAT_SALT, nonce(), KAT_PLAIN);
        assert_eq!(String::from_utf8(sealed).unwrap(), KAT_SEALED);
        assert_eq!(
            open(KAT_PASSWORD, KAT_SEALED.as_bytes()).unwrap(),
            KAT_PLAIN
        );
        assert_eq!(
            open("another", KAT_SEALED.as_bytes()),
            Err("authentication failed")
        );
    }

    #[test]
    fn tokens_are_normalised_like_k3s() {
        let ca = "a".repeat(64);
        assert_eq!(passphrase(&format!("K10{ca}::server:pw")), Ok("pw"));
        assert_eq!(passphrase(&format!("K10{ca}::server:p:w")), Ok("p:w"));
        assert_eq!(passphrase("K10::server:pw"), Ok("pw"));
        assert_eq!(passphrase("bare-password"), Ok("bare-password"));
        assert_eq!(passphrase("a:b"), Ok("a:b"));
        assert!(passphrase("K10abc::server:pw").is_err());
        assert!(passphrase("").is_err());
        assert!(passphrase("abcdef.0123456789abcdef").is_err());
        assert!(passphrase(&format!("K10{ca}::server:")).is_err());
    }

    #[test]
    fn check_names_hashes_not_tokens() {
        let entries = vec![(
            format!("{PREFIX}{KAT_HASH}").into_bytes(),
            KAT_SEALED.as_bytes().to_vec(),
        )];
        let full = format!("K10{}::server:{KAT_PASSWORD}", "b".repeat(64));
        assert_eq!(
            check(&full, &entries).unwrap().key,
            format!("{PREFIX}{KAT_HASH}")
        );
        let e = check("rotated-secret", &entries).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(KAT_HASH) && msg.contains(&key_hash("rotated-secret")));
        assert!(!msg.contains("rotated-secret"), "{msg}");
        assert_eq!(check(KAT_PASSWORD, &[]), Err(BootstrapError::NoEntry));
        // Same key, damaged value.
        let bad = vec![(entries[0].0.clone(), b"0123:AAAA".to_vec())];
        assert!(matches!(
            check(KAT_PASSWORD, &bad),
            Err(BootstrapError::WrongToken { .. })
        ));
        // The legacy entry sealed with "" opens with any token.
        let legacy = vec![(
            storage_key("").into_bytes(),
            seal("", KAT_SALT, nonce(), KAT_PLAIN),
        )];
        assert!(check("whatever", &legacy).unwrap().legacy_empty);
    }
}
