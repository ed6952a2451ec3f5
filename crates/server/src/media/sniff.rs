//! Decides what an upload is from its first bytes (magic numbers), never from its name,
//! and whether it may be shown inline. Any file is accepted (the contract's "files of any
//! type"): what is not on the inline allowlist (images, videos, voice messages) is a
//! download, and what is not recognised at all is stored as `application/octet-stream`.
//!
//! The declared Content-Type is consulted for one thing only: telling a voice message from a
//! video when the container is the same (WebM and MP4 carry either, and their first bytes do
//! not say which). It can only make an upload `audio`, never anything riskier.

/// What ChatNode does with an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A raster image we decode: dimensions, metadata stripped, thumbnail.
    Image,
    /// Stored as is, played inline, seekable (HTTP ranges).
    Video,
    /// A voice message: stored as is, played inline.
    Audio,
    /// Anything else: always served as a download.
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::File => "file",
        }
    }
}

/// How many leading bytes [`sniff`] wants to see.
pub const HEAD: usize = 8 * 1024;

const IMAGES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
const VIDEOS: &[&str] = &[
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-m4v",
    "video/x-matroska",
];
const FILES: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-7z-compressed",
    "application/x-tar",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/epub+zip",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "audio/x-wav",
    "audio/x-flac",
    "audio/aac",
];

/// Voice-message formats (the contract's list), played inline.
const AUDIO: &[&str] = &["audio/webm", "audio/ogg", "audio/mp4", "audio/mpeg"];

/// What is stored for a file nobody recognises: served only as a download.
pub const UNKNOWN: &str = "application/octet-stream";

/// The type of an upload from its first bytes (and, for audio in a video container, the
/// declared type), or `None` for an empty upload. Text (UTF-8 without NUL bytes) is
/// `text/plain`, which is how HTML, SVG and scripts end up: plain-text downloads, never
/// rendered. Anything unrecognised is `application/octet-stream`, a download.
pub fn sniff(head: &[u8], declared: Option<&str>) -> Option<(String, Kind)> {
    if head.is_empty() {
        return None;
    }
    let declared = declared
        .and_then(|d| d.split(';').next())
        .map(|d| d.trim().to_ascii_lowercase());
    if let Some(t) = infer::get(head) {
        let mime = match t.mime_type() {
            // The same container, named for its use.
            "audio/m4a" | "audio/x-m4a" => "audio/mp4",
            // Opus is a codec; its file is an Ogg one.
            "audio/opus" => "audio/ogg",
            "video/webm" if declared.as_deref() == Some("audio/webm") => "audio/webm",
            "video/mp4" | "video/x-m4v"
                if matches!(declared.as_deref(), Some("audio/mp4" | "audio/x-m4a")) =>
            {
                "audio/mp4"
            }
            m => m,
        };
        let kind = if IMAGES.contains(&mime) {
            Kind::Image
        } else if VIDEOS.contains(&mime) {
            Kind::Video
        } else if AUDIO.contains(&mime) {
            Kind::Audio
        } else if FILES.contains(&mime) {
            Kind::File
        } else if looks_like_text(head) {
            // HTML, XML, scripts…: kept, but only ever as plain text.
            return Some(("text/plain".to_owned(), Kind::File));
        } else {
            return Some((UNKNOWN.to_owned(), Kind::File));
        };
        return Some((mime.to_owned(), kind));
    }
    if looks_like_text(head) {
        return Some(("text/plain".to_owned(), Kind::File));
    }
    Some((UNKNOWN.to_owned(), Kind::File))
}

/// UTF-8 with no control characters other than tab, newline, carriage return, form feed
/// and escape.
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // The head may end inside a multi-byte character.
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c' | '\x1b'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff_(head: &[u8]) -> Option<(String, Kind)> {
        sniff(head, None)
    }

    #[test]
    fn decides_by_content_not_by_name() {
        assert_eq!(
            sniff_(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap().1,
            Kind::Image
        );
        assert_eq!(
            sniff_(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").unwrap().0,
            "application/pdf"
        );
        let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom\0\0\0\x08free";
        assert_eq!(sniff_(mp4).unwrap(), ("video/mp4".into(), Kind::Video));
        // HTML and SVG are only ever text.
        for html in [
            &b"<!doctype html><script>alert(1)</script>"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        ] {
            assert_eq!(sniff_(html).unwrap(), ("text/plain".into(), Kind::File));
        }
        assert_eq!(sniff_("héllo wörld".as_bytes()).unwrap().0, "text/plain");
        // A declared type cannot make anything an image or a video.
        assert_eq!(
            sniff(b"<html>", Some("image/png")).unwrap(),
            ("text/plain".into(), Kind::File)
        );
    }

    #[test]
    fn unknown_binaries_are_plain_downloads() {
        for bin in [
            &b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"[..],
            b"MZ\x90\0\x03\0\0\0\x04\0",
            &[0u8, 1, 2, 3, 255, 254],
        ] {
            assert_eq!(sniff_(bin).unwrap(), (UNKNOWN.into(), Kind::File));
        }
        assert!(sniff_(b"").is_none());
    }

    #[test]
    fn voice_messages_are_audio() {
        let ogg = b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead";
        assert_eq!(sniff_(ogg).unwrap().1, Kind::Audio);
        let mp3 = b"ID3\x04\0\0\0\0\0\x0f";
        assert_eq!(sniff_(mp3).unwrap(), ("audio/mpeg".into(), Kind::Audio));
        // WebM and MP4 carry sound or pictures: the declared type tells a voice message.
        let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02";
        let webm = &[&webm[..], &[0u8; 300]].concat()[..];
        assert_eq!(sniff_(webm).unwrap().1, Kind::Video);
        assert_eq!(
            sniff(webm, Some("audio/webm;codecs=opus")).unwrap(),
            ("audio/webm".into(), Kind::Audio)
        );
        let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom\0\0\0\x08free";
        assert_eq!(
            sniff(mp4, Some("audio/mp4")).unwrap(),
            ("audio/mp4".into(), Kind::Audio)
        );
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let s = "aé".as_bytes();
        assert!(looks_like_text(&s[..2]));
    }
}
