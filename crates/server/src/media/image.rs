//! Image processing for uploads: runs on the blocking pool (callers use `spawn_blocking`).
//!
//! Every accepted JPEG, PNG and WebP is decoded and re-encoded, which drops all metadata
//! (EXIF GPS position, camera serials, XMP) after applying the EXIF orientation to the
//! pixels. GIFs are kept byte for byte (re-encoding would lose animation; GIF carries no
//! EXIF). The pixel count is checked from the header before decoding, so a small file that
//! would decompress into gigabytes (a decompression bomb) is refused cheaply.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Longest side of thumbnails, in pixels.
pub const THUMB_SIZE: u32 = 320;

pub struct Processed {
    pub width: u32,
    pub height: u32,
    /// The cleaned image to store instead of the upload (`None`: keep the upload as is).
    pub cleaned: Option<Vec<u8>>,
    pub thumb: Vec<u8>,
    pub thumb_mime: &'static str,
}

#[derive(Debug)]
pub enum ImageError {
    TooManyPixels,
    Invalid(String),
}

pub fn process(path: &Path, mime: &str, max_pixels: u64) -> Result<Processed, ImageError> {
    process_from(
        || std::fs::File::open(path).map(std::io::BufReader::new),
        mime,
        max_pixels,
    )
}

/// [`process`] on any seekable source; `source` is called once for the header and once for
/// the decode. Public for the `media_sniff` fuzz target, which feeds it bytes in memory.
#[doc(hidden)]
pub fn process_from<R: BufRead + Seek>(
    source: impl Fn() -> std::io::Result<R>,
    mime: &str,
    max_pixels: u64,
) -> Result<Processed, ImageError> {
    let format = match mime {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        other => return Err(ImageError::Invalid(format!("not an image type: {other}"))),
    };
    let invalid = |e: image::ImageError| ImageError::Invalid(e.to_string());
    let open = || -> Result<ImageReader<R>, ImageError> {
        let mut r = ImageReader::new(source().map_err(|e| ImageError::Invalid(e.to_string()))?);
        r.set_format(format);
        let mut limits = Limits::default();
        limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 * 1024 * 1024));
        r.limits(limits);
        Ok(r)
    };
    let (w, h) = open()?.into_dimensions().map_err(invalid)?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ImageError::TooManyPixels);
    }
    let mut decoder = open()?.into_decoder().map_err(invalid)?;
    let orientation = decoder.orientation().map_err(invalid)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(invalid)?;
    img.apply_orientation(orientation);
    let cleaned = match format {
        ImageFormat::Gif => None,
        ImageFormat::Jpeg => Some(encode_jpeg(&img, 90).map_err(invalid)?),
        other => {
            let mut buf = Cursor::new(Vec::new());
            img.write_to(&mut buf, other).map_err(invalid)?;
            Some(buf.into_inner())
        }
    };
    let thumb_img = img.thumbnail(THUMB_SIZE, THUMB_SIZE);
    let (thumb, thumb_mime) = if thumb_img.color().has_alpha() {
        let mut buf = Cursor::new(Vec::new());
        thumb_img
            .write_to(&mut buf, ImageFormat::Png)
            .map_err(invalid)?;
        (buf.into_inner(), "image/png")
    } else {
        (encode_jpeg(&thumb_img, 80).map_err(invalid)?, "image/jpeg")
    };
    Ok(Processed {
        width: img.width(),
        height: img.height(),
        cleaned,
        thumb,
        thumb_mime,
    })
}

fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut buf = Vec::new();
    let rgb = img.to_rgb8();
    JpegEncoder::new_with_quality(&mut buf, quality).encode_image(&rgb)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(dir: &Path, w: u32, h: u32) -> std::path::PathBuf {
        let p = dir.join("x.png");
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 255) as u8, (y % 255) as u8, 90])
        })
        .save(&p)
        .unwrap();
        p
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio() {
        let dir = tempfile::tempdir().unwrap();
        let out = process(&write_png(dir.path(), 1000, 500), "image/png", 40_000_000).unwrap();
        assert_eq!((out.width, out.height), (1000, 500));
        let t = image::load_from_memory(&out.thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        assert_eq!(out.thumb_mime, "image/jpeg");
    }

    #[test]
    fn refuses_too_many_pixels_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            process(&write_png(dir.path(), 300, 300), "image/png", 10_000),
            Err(ImageError::TooManyPixels)
        ));
    }

    #[test]
    fn garbage_with_a_valid_magic_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is not a png at all").unwrap();
        assert!(matches!(
            process(&p, "image/png", 1_000_000),
            Err(ImageError::Invalid(_))
        ));
    }
}
