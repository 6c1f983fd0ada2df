//! Secrets: given inline or as a file (systemd `LoadCredential=`), never printed.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The only way to read the value; grep for `expose` to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

/// Accepts only a string, and never echoes what it got instead: serde's own
/// "invalid type: integer `77123456789`" would print an unquoted secret.
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(what: &str) -> E {
        E::custom(format!(
            "a secret must be a quoted string, not {what} (the value is not shown); \
             put it in quotes, or better in a *_file"
        ))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quoted string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret(v.to_string()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
        Ok(Secret(v))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::refuse("a number"))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::refuse("a number"))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::refuse("a number"))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::refuse("a boolean"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::refuse("an array"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
        Err(Self::refuse("a table or a date"))
    }
}

/// Where relative `*_file` names live outside systemd (contract 5).
pub const CREDENTIALS_DIR: &str = "/etc/vigil/credentials";

/// The credentials directory a root shell uses: `$VIGIL_CREDENTIALS_DIR`, else
/// [`CREDENTIALS_DIR`].
pub fn credentials_dir() -> PathBuf {
    std::env::var_os("VIGIL_CREDENTIALS_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CREDENTIALS_DIR))
}

/// Resolves a path the config names: a relative path is a credential. Under
/// systemd it is looked up in `$CREDENTIALS_DIRECTORY` (every unit loads the
/// one directory with `LoadCredential=vigil:/etc/vigil/credentials`, so a file
/// arrives as `vigil_<file>`, found through `VIGIL_CREDENTIALS_PREFIX`);
/// from a shell it is looked up in [`credentials_dir`].
pub fn resolve_path(p: &Path) -> PathBuf {
    if !p.is_relative() {
        return p.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        let plain = Path::new(&dir).join(p);
        if let Some(prefix) = std::env::var_os("VIGIL_CREDENTIALS_PREFIX") {
            let mut name = prefix;
            name.push(p.as_os_str());
            let prefixed = Path::new(&dir).join(name);
            if !plain.exists() && prefixed.exists() {
                return prefixed;
            }
        }
        return plain;
    }
    credentials_dir().join(p)
}

/// Why a secret file cannot be used. The messages are fit for a config
/// error; none holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "secret file {} is accessible by group or others (mode {mode:04o}); please run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("secret file {} is empty", path.display())]
    Empty { path: PathBuf },
}

fn unreadable(path: &Path) -> impl FnOnce(std::io::Error) -> SecretFileError + '_ {
    move |source| SecretFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that a secret file exists, is a regular file and is private to its
/// owner.
pub fn check_private_file(path: &Path) -> Result<(), SecretFileError> {
    let meta = std::fs::metadata(path).map_err(unreadable(path))?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::File::open(path).map_err(unreadable(path))?;
    Ok(())
}

/// Reads a private secret file, trimming one trailing newline.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    check_private_file(path)?;
    let mut s = std::fs::read_to_string(path).map_err(unreadable(path))?;
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    if s.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_secret_is_not_echoed() {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[allow(dead_code)]
            password: Secret,
        }
        for v in [
            "77123456789",
            "-5",
            "1.5e3",
            "true",
            "[1, 2]",
            "1979-05-27T07:32:00Z",
        ] {
            // What the config error shows: the message and the line, not the source text.
            let e = toml::from_str::<T>(&format!("password = {v}\n"))
                .unwrap_err()
                .message()
                .to_string();
            assert!(e.contains("must be a quoted string"), "{v}: {e}");
            assert!(!e.contains(v), "{v} echoed: {e}");
        }
        let t: T = toml::from_str("password = \"s3cret\"\n").unwrap();
        assert_eq!(t.password.expose(), "s3cret");
    }

    #[test]
    fn secret_is_never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }

    #[test]
    fn world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_secret_file(&p).unwrap_err();
        assert!(matches!(e, SecretFileError::TooOpen { mode: 0o644, .. }));
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "abc");
        let e = read_secret_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
