//! age identities for decryption: an identity file, a passphrase-protected
//! identity file (age's scrypt-encrypted format, binary or armored, as
//! `age -p -o key.age key.txt` writes it), or either of them on stdin (`-`).
//!
//! The passphrase comes from `$VIGIL_IDENTITY_PASSPHRASE` when set, else
//! from a prompt on the terminal.

use crate::RestoreError;
use age::secrecy::SecretString;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// The environment variable a passphrase-protected identity's passphrase is read from.
pub const PASSPHRASE_ENV: &str = "VIGIL_IDENTITY_PASSPHRASE";

/// Loaded X25519 identities and where they came from (for messages).
pub struct Identities {
    ids: Vec<age::x25519::Identity>,
    pub origin: String,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("origin", &self.origin)
            .field("public_keys", &self.public_keys())
            .finish()
    }
}

impl Identities {
    /// For `age::Decryptor::decrypt`.
    pub fn iter(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.ids.iter().map(|i| i as &dyn age::Identity)
    }

    /// The `age1…` public keys of these identities.
    pub fn public_keys(&self) -> Vec<String> {
        self.ids.iter().map(|i| i.to_public().to_string()).collect()
    }

    /// Reads identities from a path, or from stdin when `spec` is `-`.
    pub fn load(spec: &Path) -> Result<Identities, RestoreError> {
        let stdin = spec.as_os_str() == "-";
        let origin = if stdin {
            "<stdin>".to_string()
        } else {
            spec.display().to_string()
        };
        let err = |message: String| RestoreError::Identity {
            origin: origin.clone(),
            message,
        };
        let bytes = if stdin {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|e| err(format!("reading stdin: {e}")))?;
            b
        } else {
            std::fs::read(spec).map_err(|e| err(format!("cannot read it: {e}")))?
        };
        Self::parse(&bytes, &origin, &mut || passphrase(&origin))
    }

    /// Parses identity-file bytes; `ask` gives the passphrase when they are encrypted.
    pub fn parse(
        bytes: &[u8],
        origin: &str,
        ask: &mut dyn FnMut() -> Result<String, NoPassphrase>,
    ) -> Result<Identities, RestoreError> {
        let err = |message: String| RestoreError::Identity {
            origin: origin.to_string(),
            message,
        };
        let encrypted = bytes.starts_with(b"age-encryption.org/v1")
            || bytes
                .trim_ascii_start()
                .starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----");
        let text = if encrypted {
            let pass = ask().map_err(|e| err(e.to_string()))?;
            let d = age::Decryptor::new(age::armor::ArmoredReader::new(bytes))
                .map_err(|e| err(format!("not a valid passphrase-protected age file: {e}")))?;
            if !d.is_scrypt() {
                return Err(err(
                    "this is an age file encrypted to a key, not a passphrase-protected identity (`age -p`); decrypt it first".into(),
                ));
            }
            let id = age::scrypt::Identity::new(SecretString::from(pass));
            let mut r = d
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::DecryptionFailed
                    | age::DecryptError::NoMatchingKeys
                    | age::DecryptError::KeyDecryptionFailed => {
                        err("wrong passphrase (the identity file could not be decrypted)".into())
                    }
                    e => err(format!("decrypting the identity file: {e}")),
                })?;
            let mut s = String::new();
            r.read_to_string(&mut s)
                .map_err(|e| err(format!("decrypting the identity file: {e}")))?;
            s
        } else {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| err("not an age identity file (it is not text)".into()))?
        };
        let mut ids = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if !l.starts_with("AGE-SECRET-KEY-1") {
                // Never echo the line: it may be a secret in another format.
                return Err(err(format!(
                    "line {} is not an age X25519 identity (AGE-SECRET-KEY-1…); vigil archives are encrypted to X25519 keys made with age-keygen",
                    i + 1
                )));
            }
            let id = age::x25519::Identity::from_str(l)
                .map_err(|e| err(format!("line {} is not a valid age identity: {e}", i + 1)))?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(err("holds no age identity (AGE-SECRET-KEY-1…)".into()));
        }
        Ok(Identities {
            ids,
            origin: origin.to_string(),
        })
    }
}

/// No passphrase for a protected identity file: neither the environment
/// nor a terminal gave one.
#[derive(Debug, thiserror::Error)]
#[error("is passphrase-protected, and no passphrase could be read ({0}); set {PASSPHRASE_ENV} or run on a terminal")]
pub struct NoPassphrase(#[source] pub std::io::Error);

/// The passphrase from the environment, else a prompt on the terminal.
fn passphrase(origin: &str) -> Result<String, NoPassphrase> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(p);
    }
    rpassword::prompt_password(format!("Passphrase for the age identity {origin}: "))
        .map_err(NoPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_tty() -> NoPassphrase {
        NoPassphrase(std::io::Error::other("no terminal"))
    }

    fn protect(plain: &[u8], pass: &str, armor: bool) -> Vec<u8> {
        let mut r = age::scrypt::Recipient::new(SecretString::from(pass.to_string()));
        r.set_work_factor(10);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let fmt = if armor {
            age::armor::Format::AsciiArmor
        } else {
            age::armor::Format::Binary
        };
        let aw = age::armor::ArmoredWriter::wrap_output(&mut out, fmt).unwrap();
        let mut w = enc.wrap_output(aw).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap().finish().unwrap();
        out
    }

    #[test]
    fn plain_and_protected_identities() {
        let id = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        let ids = Identities::parse(file.as_bytes(), "k", &mut || Err(no_tty())).unwrap();
        assert_eq!(ids.public_keys(), vec![id.to_public().to_string()]);
        for armor in [false, true] {
            let enc = protect(file.as_bytes(), "correct horse", armor);
            let ids = Identities::parse(&enc, "k.age", &mut || Ok("correct horse".into())).unwrap();
            assert_eq!(ids.public_keys(), vec![id.to_public().to_string()]);
            let e = Identities::parse(&enc, "k.age", &mut || Ok("wrong".into()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("wrong passphrase") && e.contains("k.age"), "{e}");
        }
        let e = Identities::parse(b"hello\n", "k", &mut || Err(no_tty()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && !e.contains("hello"), "{e}");
    }
}
