//! Encryption at rest: the [`Keyring`] that seals and opens stored values, the keyed hash
//! used for equality lookups, and the key file format.
//!
//! Owns the primitives only; it knows nothing of tables or of startup (that is
//! [`crate::encryption`]). It must never log a key, a plaintext or a lookup hash.
//!
//! - Cipher: XChaCha20-Poly1305 (RustCrypto), a fresh random 24-byte nonce per value. 192-bit
//!   nonces can be drawn at random for any number of values without a realistic collision,
//!   so no counter has to be kept (or kept in sync between cluster nodes).
//! - Stored form: `enc1:<key id>:<base64url(nonce || ciphertext || tag)>`, plain text, so
//!   `TEXT` columns stay `TEXT` on SQLite and PostgreSQL and a value says which key opens it.
//! - Associated data: the column name (e.g. `messages.body`). A value copied into another
//!   column (a body into an email) fails to open. Values are not bound to their row: someone
//!   who can *write* the database could swap two bodies of the same column (see
//!   docs/security.md).
//! - Keys: each 32-byte master key yields three independent subkeys through HMAC-SHA256 with
//!   fixed labels: the cipher key, the lookup-hash key and an 8-hex-digit key id. The id is a
//!   function of the key, so a wrong key can never claim a right key's id.
//! - Lookup hash: HMAC-SHA256(lookup key, column || 0 || value), base64url. Equal inputs give
//!   equal hashes (so `WHERE email_hash = $1` and `UNIQUE` work); without the key, a hash
//!   cannot be checked against a guessed email or phone number.
//!
//! The cipher and the keyed HMAC state are built once per key when the keyring is made; a
//! seal or open costs one XChaCha20-Poly1305 pass and the base64 text, with two allocations
//! each.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The version tag every stored value starts with.
pub const PREFIX: &str = "enc1:";
/// `enc1:` + 8 hex digits + `:`: what `substr(col, 1, 14)` compares in SQL.
pub const HEADER_LEN: usize = PREFIX.len() + ID_LEN + 1;
const ID_LEN: usize = 8;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Associated data of each encrypted column: a value only opens in the column it was made for.
pub mod column {
    pub const MESSAGE_BODY: &str = "messages.body";
    pub const EVENT_PAYLOAD: &str = "events.payload";
    pub const MEDIA_NAME: &str = "media.name";
    pub const USER_EMAIL: &str = "users.email";
    pub const USER_PHONE: &str = "users.phone";
    /// A service notification's title and body.
    pub const NOTIFICATION_TEXT: &str = "notifications.text";
    /// A known value stored with the data: opening it proves the key is the database's.
    pub const CANARY: &str = "encryption.canary";
}

/// The plaintext of the canary.
pub const CANARY_TEXT: &str = "chatnode encryption canary";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the value is not encrypted (no `enc1:` header)")]
    NotEncrypted,
    #[error("the value is under key {0}, which is not in the keyring")]
    UnknownKey(String),
    #[error("the encrypted value is malformed")]
    Malformed,
    /// Wrong key for this value, wrong column, or the ciphertext was altered.
    #[error("the encrypted value does not authenticate under key {0}")]
    Forged(String),
}

/// One master key and what is derived from it.
struct Key {
    id: [u8; ID_LEN],
    raw: [u8; KEY_LEN],
    aead: XChaCha20Poly1305,
    /// Keyed once; cloned per hash so the key schedule is not redone.
    lookup: HmacSha256,
    /// The search index's terms (`search_term`), keyed apart from equality lookups.
    search: HmacSha256,
}

impl Key {
    fn new(raw: [u8; KEY_LEN]) -> Key {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut m = HmacSha256::new_from_slice(&raw).expect("HMAC takes any key length");
            m.update(b"chatnode encryption at rest v1: ");
            m.update(label);
            m.finalize().into_bytes().into()
        };
        let enc = derive(b"cipher");
        let look = derive(b"lookup");
        let find = derive(b"search terms");
        let idb = derive(b"key id");
        let mut id = [0u8; ID_LEN];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in idb[..ID_LEN / 2].iter().enumerate() {
            id[2 * i] = HEX[usize::from(b >> 4)];
            id[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        Key {
            id,
            raw,
            aead: XChaCha20Poly1305::new(&enc.into()),
            lookup: HmacSha256::new_from_slice(&look).expect("HMAC takes any key length"),
            search: HmacSha256::new_from_slice(&find).expect("HMAC takes any key length"),
        }
    }

    fn id(&self) -> &str {
        std::str::from_utf8(&self.id).expect("key ids are hex")
    }
}

/// The keys that open stored values: the current one (which seals) first, then older ones
/// (which only open) during a rotation.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: never the key material.
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

impl Keyring {
    /// A keyring of one fresh random key.
    pub fn generate() -> Keyring {
        Keyring {
            keys: vec![Key::new(random_key())],
        }
    }

    /// A keyring of one key: exactly 32 bytes of key material.
    pub fn from_bytes(key: &[u8]) -> anyhow::Result<Keyring> {
        let raw: [u8; KEY_LEN] = key
            .try_into()
            .map_err(|_| anyhow::anyhow!("an encryption key is 32 bytes, not {}", key.len()))?;
        Ok(Keyring {
            keys: vec![Key::new(raw)],
        })
    }

    /// Parses the key file format (or `CHATNODE_ENCRYPTION_KEY`): keys in base64 (standard or
    /// URL-safe, padding optional), newest first, separated by newlines, commas or spaces;
    /// lines starting with `#` are comments.
    pub fn parse(text: &str) -> anyhow::Result<Keyring> {
        let mut keys: Vec<Key> = Vec::new();
        for token in text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|t| !t.is_empty())
        {
            let normalized: String = token
                .trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            let bytes = URL_SAFE_NO_PAD
                .decode(normalized)
                .map_err(|_| anyhow::anyhow!("an encryption key is not valid base64"))?;
            let raw: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!("an encryption key is 32 bytes, not {}", bytes.len())
            })?;
            let key = Key::new(raw);
            if keys.iter().any(|k| k.id == key.id) {
                bail!("the key {} is listed twice", key.id());
            }
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("no encryption key found");
        }
        Ok(Keyring { keys })
    }

    /// The key file text for this keyring (newest first).
    pub fn to_file_text(&self) -> String {
        let mut s = String::from(
            "# ChatNode encryption-at-rest keys (base64url, 32 bytes each), newest first.\n\
             # Without this file the encrypted data cannot be read: back it up, apart from the\n\
             # database backups. `chatnode rotate-key` replaces it.\n",
        );
        for k in &self.keys {
            s.push_str(&URL_SAFE_NO_PAD.encode(k.raw));
            s.push('\n');
        }
        s
    }

    /// A keyring with a fresh key in front of these (a rotation's starting point).
    pub fn with_new_key(&self) -> Keyring {
        let mut keys = vec![Key::new(random_key())];
        keys.extend(self.keys.iter().map(|k| Key::new(k.raw)));
        Keyring { keys }
    }

    /// Just the current key (a rotation's end point).
    pub fn current_only(&self) -> Keyring {
        Keyring {
            keys: vec![Key::new(self.keys[0].raw)],
        }
    }

    /// The id of the key that seals new values.
    pub fn current_id(&self) -> &str {
        self.keys[0].id()
    }

    /// Every key id, newest first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(Key::id).collect()
    }

    /// `enc1:<current id>:`: every value sealed by the current key starts with it.
    pub fn current_header(&self) -> String {
        format!("{PREFIX}{}:", self.current_id())
    }

    /// Seals `plaintext` for `column` under the current key.
    pub fn encrypt(&self, column: &str, plaintext: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = XNonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let pt = plaintext.as_bytes();
        let mut buf = Vec::with_capacity(NONCE_LEN + pt.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(pt);
        let tag = key
            .aead
            .encrypt_inout_detached(&nonce, column.as_bytes(), (&mut buf[NONCE_LEN..]).into())
            // The only failure is a message over 256 GiB; stored values are far smaller.
            .expect("XChaCha20-Poly1305 seals any value we store");
        buf.extend_from_slice(&tag);
        let mut out = String::with_capacity(HEADER_LEN + buf.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        out.push_str(key.id());
        out.push(':');
        URL_SAFE_NO_PAD.encode_string(&buf, &mut out);
        out
    }

    /// Opens a value sealed for `column` by any key of the keyring.
    pub fn decrypt(&self, column: &str, stored: &str) -> Result<String, CryptoError> {
        let (id, body) = split(stored)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id.as_bytes())
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let mut buf = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if buf.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let end = buf.len() - TAG_LEN;
        let nonce = XNonce::try_from(&buf[..NONCE_LEN]).map_err(|_| CryptoError::Malformed)?;
        let tag = Tag::try_from(&buf[end..]).map_err(|_| CryptoError::Malformed)?;
        key.aead
            .decrypt_inout_detached(
                &nonce,
                column.as_bytes(),
                (&mut buf[NONCE_LEN..end]).into(),
                &tag,
            )
            .map_err(|_| CryptoError::Forged(id.to_owned()))?;
        // Shift the plaintext to the front instead of copying it into a new allocation.
        buf.copy_within(NONCE_LEN..end, 0);
        buf.truncate(end - NONCE_LEN);
        String::from_utf8(buf).map_err(|_| CryptoError::Malformed)
    }

    /// `decrypt` for optional columns.
    pub fn decrypt_opt(
        &self,
        column: &str,
        stored: Option<&str>,
    ) -> Result<Option<String>, CryptoError> {
        stored.map(|s| self.decrypt(column, s)).transpose()
    }

    /// The keyed hash of `value` for equality lookups in `column` (current key).
    pub fn lookup_hash(&self, column: &str, value: &str) -> String {
        let mut m = self.keys[0].lookup.clone();
        m.update(column.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    }

    /// The search index's term for a word prefix in one conversation (current key): 64 bits
    /// of a keyed hash, so neither the prefix nor which conversations share it shows.
    pub fn search_term(&self, conversation_id: &str, prefix: &str) -> i64 {
        let mut m = self.keys[0].search.clone();
        m.update(conversation_id.as_bytes());
        m.update(&[0]);
        m.update(prefix.as_bytes());
        let digest = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_le_bytes(first)
    }

    /// Whether `stored` is sealed by the current key (judged by its header only).
    pub fn is_current(&self, stored: &str) -> bool {
        stored.len() >= HEADER_LEN
            && stored.starts_with(PREFIX)
            && stored.as_bytes()[PREFIX.len()..PREFIX.len() + ID_LEN] == self.keys[0].id
            && stored.as_bytes()[HEADER_LEN - 1] == b':'
    }
}

/// The key id a stored value names, if it has the `enc1:` header.
pub fn key_id_of(stored: &str) -> Option<&str> {
    split(stored).ok().map(|(id, _)| id)
}

fn split(stored: &str) -> Result<(&str, &str), CryptoError> {
    let rest = stored
        .strip_prefix(PREFIX)
        .ok_or(CryptoError::NotEncrypted)?;
    match rest.split_once(':') {
        Some((id, body)) if id.len() == ID_LEN => Ok((id, body)),
        _ => Err(CryptoError::Malformed),
    }
}

fn random_key() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut k);
    k
}

/// Where the keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A key file (mode 0600), generated on first start when missing.
    File(std::path::PathBuf),
    /// `CHATNODE_ENCRYPTION_KEY`: the key material itself.
    Env(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Env(_) => f.write_str("Env(…)"),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "encryption key file {}", p.display()),
            KeySource::Env(_) => f.write_str("CHATNODE_ENCRYPTION_KEY"),
        }
    }
}

/// Reads a key file; `Ok(None)` when it does not exist.
pub fn read_key_file(path: &Path) -> anyhow::Result<Option<Keyring>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the encryption key file is readable by other users; chmod 600 it"
                    );
                }
            }
            Keyring::parse(&text)
                .map(Some)
                .with_context(|| format!("{} is not a valid key file", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a new key file (mode 0600); fails if one exists.
pub fn create_key_file(path: &Path, keys: &Keyring) -> anyhow::Result<()> {
    crate::secrets::write_private(path, keys.to_file_text().as_bytes())
}

/// Replaces a key file atomically: a 0600 temporary file, synced, renamed over the old one,
/// and the directory synced, so a crash leaves either the old file or the new one.
pub fn replace_key_file(path: &Path, keys: &Keyring) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", tmp.display())),
    }
    crate::secrets::write_private(&tmp, keys.to_file_text().as_bytes())?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let k = Keyring::generate();
        for text in ["", "hello", "ünïcødé 🙂", &"x".repeat(70_000)] {
            let sealed = k.encrypt(column::MESSAGE_BODY, text);
            assert!(sealed.starts_with(&k.current_header()));
            assert!(k.is_current(&sealed));
            assert!(text.len() < 3 || !sealed.contains(text));
            assert_eq!(k.decrypt(column::MESSAGE_BODY, &sealed).unwrap(), text);
        }
        // A fresh nonce each time: the same text seals differently.
        assert_ne!(k.encrypt("c", "same"), k.encrypt("c", "same"));
        assert_eq!(k.current_header().len(), HEADER_LEN);
    }

    #[test]
    fn a_value_opens_only_in_its_column_under_its_key() {
        let k = Keyring::generate();
        let sealed = k.encrypt(column::MESSAGE_BODY, "a@example.com");
        assert_eq!(
            k.decrypt(column::USER_EMAIL, &sealed),
            Err(CryptoError::Forged(k.current_id().to_owned()))
        );
        let other = Keyring::generate();
        assert_eq!(
            other.decrypt(column::MESSAGE_BODY, &sealed),
            Err(CryptoError::UnknownKey(k.current_id().to_owned()))
        );
        // Tampering with any byte of the body fails authentication.
        let mut bytes = sealed.clone().into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(k.decrypt(column::MESSAGE_BODY, &tampered).is_err());
        assert_eq!(
            k.decrypt(column::MESSAGE_BODY, "plain text"),
            Err(CryptoError::NotEncrypted)
        );
        assert_eq!(
            k.decrypt(column::MESSAGE_BODY, "enc1:zz:abc"),
            Err(CryptoError::Malformed)
        );
    }

    #[test]
    fn rotation_keyrings_open_old_values_and_seal_with_the_new_key() {
        let old = Keyring::generate();
        let sealed = old.encrypt(column::MEDIA_NAME, "plans.pdf");
        let rotating = old.with_new_key();
        assert_ne!(rotating.current_id(), old.current_id());
        assert_eq!(rotating.ids()[1], old.current_id());
        assert!(!rotating.is_current(&sealed));
        assert_eq!(
            rotating.decrypt(column::MEDIA_NAME, &sealed).unwrap(),
            "plans.pdf"
        );
        let done = rotating.current_only();
        assert_eq!(done.ids(), vec![rotating.current_id()]);
        // The key file text parses back to the same keys, in order.
        let again = Keyring::parse(&rotating.to_file_text()).unwrap();
        assert_eq!(again.ids(), rotating.ids());
        assert_eq!(key_id_of(&sealed), Some(old.current_id()));
    }

    #[test]
    fn lookup_hashes_are_keyed_and_per_column() {
        let k = Keyring::from_bytes(&[7u8; 32]).unwrap();
        let h = k.lookup_hash(column::USER_EMAIL, "a@example.com");
        assert_eq!(h, k.lookup_hash(column::USER_EMAIL, "a@example.com"));
        assert_ne!(h, k.lookup_hash(column::USER_PHONE, "a@example.com"));
        assert_ne!(
            h,
            Keyring::from_bytes(&[8u8; 32])
                .unwrap()
                .lookup_hash(column::USER_EMAIL, "a@example.com")
        );
        // Stable across versions: stored hashes depend on it.
        assert_eq!(
            k.current_id(),
            Keyring::from_bytes(&[7u8; 32]).unwrap().current_id()
        );
    }

    #[test]
    fn parses_standard_and_url_safe_base64_and_rejects_bad_keys() {
        let std_b64 = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 32]);
        assert!(std_b64.contains('+') || std_b64.contains('/'));
        let a = Keyring::parse(&std_b64).unwrap();
        let b = Keyring::parse(&URL_SAFE_NO_PAD.encode([0xfbu8; 32])).unwrap();
        assert_eq!(a.current_id(), b.current_id());
        let two = format!(
            "{},{}",
            URL_SAFE_NO_PAD.encode([1u8; 32]),
            URL_SAFE_NO_PAD.encode([2u8; 32])
        );
        assert_eq!(Keyring::parse(&two).unwrap().ids().len(), 2);
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("# only a comment\n").is_err());
        assert!(Keyring::parse(&URL_SAFE_NO_PAD.encode([1u8; 16])).is_err());
        assert!(Keyring::parse("not base64!").is_err());
        let dup = format!("{0}\n{0}", URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert!(Keyring::parse(&dup).is_err());
    }

    #[test]
    fn key_files_are_private_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption_key");
        assert!(read_key_file(&path).unwrap().is_none());
        let k = Keyring::generate();
        create_key_file(&path, &k).unwrap();
        assert!(create_key_file(&path, &k).is_err(), "never overwrites");
        let r = k.with_new_key();
        replace_key_file(&path, &r).unwrap();
        assert_eq!(read_key_file(&path).unwrap().unwrap().ids(), r.ids());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!path.with_extension("tmp").exists());
    }

    /// `cargo test -p chatnode-server --release --lib crypto::tests::cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_a_100_byte_body() {
        let k = Keyring::generate();
        let body = "x".repeat(100);
        let n = 200_000u32;
        for _ in 0..10_000 {
            std::hint::black_box(k.decrypt("c", &k.encrypt("c", &body)).unwrap());
        }
        let t = std::time::Instant::now();
        let mut sealed = String::new();
        for _ in 0..n {
            sealed = std::hint::black_box(k.encrypt(column::MESSAGE_BODY, &body));
        }
        let enc = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(k.decrypt(column::MESSAGE_BODY, &sealed).unwrap());
        }
        let dec = t.elapsed() / n;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(k.lookup_hash(column::USER_EMAIL, "someone@example.com"));
        }
        let hash = t.elapsed() / n;
        // A sent message also seals its `message` event (the frame's JSON, ~500 bytes).
        let frame = "y".repeat(500);
        let t = std::time::Instant::now();
        for _ in 0..n {
            let s = k.encrypt(column::EVENT_PAYLOAD, &frame);
            std::hint::black_box(k.decrypt(column::EVENT_PAYLOAD, &s).unwrap());
        }
        let event = t.elapsed() / n;
        println!(
            "100-byte body: encrypt {} ns, decrypt {} ns, encrypt+decrypt {} ns; 500-byte event encrypt+decrypt {} ns; lookup hash {} ns; stored size {} bytes",
            enc.as_nanos(),
            dec.as_nanos(),
            (enc + dec).as_nanos(),
            event.as_nanos(),
            hash.as_nanos(),
            sealed.len()
        );
    }
}
