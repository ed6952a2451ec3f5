//! Uploads: `media::sniff::sniff` (magic bytes, the inline allowlist, a declared type) on the head of arbitrary
//! bytes, `media::clean_name` on a name taken from them, and for images the real processing
//! path `media::image::process_from` (header, pixel limit checked before decoding, decode,
//! EXIF orientation, re-encode, thumbnail).
//!
//! The pixel limit here is 1 megapixel instead of the default 40: the same code path (the
//! limit is a parameter), but each run stays in milliseconds and well inside
//! `-rss_limit_mb=2048`. The decoders' own allocation limit follows from it as on the server.
#![no_main]

use std::io::Cursor;

use chatnode_server::fuzzing::media::clean_name;
use chatnode_server::fuzzing::media::{ImageError, process_from};
use chatnode_server::fuzzing::media::{HEAD, Kind, sniff};
use libfuzzer_sys::fuzz_target;

const MAX_PIXELS: u64 = 1_000_000;
const IMAGES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(&data[..data.len().min(300)]);
    // The declared type, when the input has one to spare, comes from its last bytes.
    let declared = match data.len() {
        0..=16 => None,
        n => std::str::from_utf8(&data[n - 12..]).ok(),
    };
    let Some((mime, kind)) = sniff(&data[..data.len().min(HEAD)], declared) else {
        assert!(data.is_empty(), "only an empty upload has no type");
        return;
    };
    let clean = clean_name(Some(&name), &mime);
    assert!(
        !clean.is_empty() && clean != "." && clean != "..",
        "{clean:?}"
    );
    assert!(!clean.contains(['/', '\\']) && !clean.chars().any(char::is_control));
    assert!(clean.chars().count() <= 200);
    // HTML, SVG and scripts only ever come out as plain text.
    assert!(
        !mime.contains("html") && !mime.contains("svg") && !mime.ends_with("/xml"),
        "{mime}"
    );
    assert_eq!(
        kind == Kind::Image,
        IMAGES.contains(&mime.as_str()),
        "{mime}"
    );
    // Whatever was declared, only audio and video are played inline besides images.
    if kind == Kind::Audio {
        assert!(mime.starts_with("audio/"), "{mime}");
    }
    if kind != Kind::Image {
        return;
    }
    match process_from(|| Ok(Cursor::new(data)), &mime, MAX_PIXELS) {
        Ok(out) => {
            assert!(u64::from(out.width) * u64::from(out.height) <= MAX_PIXELS);
            assert!(!out.thumb.is_empty());
            assert_eq!(out.cleaned.is_none(), mime == "image/gif");
        }
        Err(ImageError::TooManyPixels | ImageError::Invalid(_)) => {}
    }
});
