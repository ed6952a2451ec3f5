//! Secret files in the data directory (JWT secret, encryption key file, VAPID key), created
//! once and readable only by their owner, and short random codes (invite links). A leaf module: it imports nothing of the crate, so the
//! modules that own secrets (`auth`, `crypto`, `push`) share it without importing each other.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

/// Writes a file readable only by its owner (0600 on Unix), failing if it already exists.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// A short random code (for invite links): 10 bytes, base64url (14 chars).
pub fn random_code() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
