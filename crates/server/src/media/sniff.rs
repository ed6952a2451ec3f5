//! Decides what an upload is from its first bytes (magic numbers), never from its name or
//! the declared Content-Type, and checks it against the allowlist.

/// What ChatNode does with an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A raster image we decode: dimensions, metadata stripped, thumbnail.
    Image,
    /// Stored as is, played inline, seekable (HTTP ranges).
    Video,
    /// Anything else allowed: always served as a download.
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
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
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/x-flac",
    "audio/m4a",
    "audio/aac",
];

/// The type of an upload from its first bytes, or `None` when it is not allowed.
/// Text (UTF-8 without NUL bytes) is accepted as `text/plain`, which is how HTML, SVG and
/// scripts end up: they are served as plain-text downloads, never rendered.
pub fn sniff(head: &[u8]) -> Option<(String, Kind)> {
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type();
        let kind = if IMAGES.contains(&mime) {
            Kind::Image
        } else if VIDEOS.contains(&mime) {
            Kind::Video
        } else if FILES.contains(&mime) {
            Kind::File
        } else if looks_like_text(head) {
            // HTML, XML, scripts…: kept, but only ever as plain text.
            return Some(("text/plain".to_owned(), Kind::File));
        } else {
            return None;
        };
        return Some((mime.to_owned(), kind));
    }
    looks_like_text(head).then(|| ("text/plain".to_owned(), Kind::File))
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

    #[test]
    fn decides_by_content_not_by_name() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap().1,
            Kind::Image
        );
        assert_eq!(
            sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").unwrap().0,
            "application/pdf"
        );
        let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom\0\0\0\x08free";
        assert_eq!(sniff(mp4).unwrap(), ("video/mp4".into(), Kind::Video));
        // HTML and SVG are only ever text.
        for html in [
            &b"<!doctype html><script>alert(1)</script>"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        ] {
            assert_eq!(sniff(html).unwrap(), ("text/plain".into(), Kind::File));
        }
        assert_eq!(sniff("héllo wörld".as_bytes()).unwrap().0, "text/plain");
    }

    #[test]
    fn refuses_unknown_binaries() {
        assert!(sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").is_none());
        assert!(sniff(b"MZ\x90\0\x03\0\0\0\x04\0").is_none());
        assert!(sniff(&[0u8, 1, 2, 3, 255, 254]).is_none());
        assert!(sniff(b"").is_none());
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let s = "aé".as_bytes();
        assert!(looks_like_text(&s[..2]));
    }
}
