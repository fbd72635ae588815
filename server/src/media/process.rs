//! CPU-bound work on uploads, run on blocking threads (never on the async runtime):
//! image decoding with a pixel budget, EXIF orientation, metadata stripping and
//! thumbnails; video container metadata and (when ffmpeg is installed) a poster frame.

use std::io::{BufReader, Cursor};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Longest side of thumbnails.
pub const THUMB_SIDE: u32 = 320;
/// Decompression-bomb guard: images above this many pixels are refused before decoding.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Decoded pixels one message may ask for, all its images together (a 693-byte JPEG can
/// claim 49 megapixels; ten of them must not cost ten full decodes), unless configured.
pub const MAX_PIXELS_PER_MESSAGE: u64 = 150_000_000;
/// Longest side kept: larger originals are downscaled to it, as the major messengers do,
/// unless configured.
pub const MAX_SIDE: u32 = 4096;

/// The image budgets in force (`CHAT_IMAGE_MAX_SIDE`, `CHAT_IMAGE_MEGAPIXELS_PER_MESSAGE`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageLimits {
    pub max_side: u32,
    pub pixels_per_message: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_side: MAX_SIDE,
            pixels_per_message: MAX_PIXELS_PER_MESSAGE,
        }
    }
}
/// Memory one decode may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Why an upload's content was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A cleaned image ready to store.
#[derive(Debug)]
pub struct ProcessedImage {
    pub width: u32,
    pub height: u32,
    /// Re-encoded pixels without any metadata, or `None` to store the upload as it is
    /// (GIF: kept byte for byte so animations survive; GIF carries no EXIF).
    pub cleaned: Option<Vec<u8>>,
    /// JPEG (or PNG when the image has transparency).
    pub thumbnail: Vec<u8>,
    pub thumbnail_ext: &'static str,
}

fn format_of(mime: &str) -> Option<ImageFormat> {
    Some(match mime {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => return None,
    })
}

fn decode_error(e: image::ImageError) -> ProcessError {
    match e {
        image::ImageError::Limits(_) => ProcessError::TooLarge(format!(
            "the image needs more memory to decode than allowed (limit {MAX_PIXELS} pixels)"
        )),
        other => ProcessError::Invalid(format!("the image cannot be decoded: {other}")),
    }
}

/// A decoder for `path` (sniffed as `mime`) whose header was read and checked: non-empty,
/// within [`MAX_PIXELS`]. Nothing is decoded yet.
fn checked_decoder(
    path: &Path,
    mime: &str,
    max_side: u32,
) -> Result<(impl ImageDecoder, ImageFormat), ProcessError> {
    let format =
        format_of(mime).ok_or_else(|| ProcessError::Invalid(format!("{mime} is not an image")))?;
    let mut reader = ImageReader::new(BufReader::new(std::fs::File::open(path)?));
    reader.set_format(format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(decode_error)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(ProcessError::Invalid("the image has no pixels".into()));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ProcessError::TooLarge(format!(
            "the image is {w}×{h} pixels; at most {MAX_PIXELS} pixels are accepted"
        )));
    }
    if format == ImageFormat::Gif && w.max(h) > max_side {
        // GIFs are kept byte for byte (animations); one this large is refused instead.
        return Err(ProcessError::TooLarge(format!(
            "the GIF is {w}×{h} pixels; at most {max_side} on its longest side"
        )));
    }
    Ok((decoder, format))
}

/// The pixels decoding `path` would produce, from its header alone.
pub fn pixels(path: &Path, mime: &str, limits: &ImageLimits) -> Result<u64, ProcessError> {
    let (decoder, _) = checked_decoder(path, mime, limits.max_side)?;
    let (w, h) = decoder.dimensions();
    Ok(u64::from(w) * u64::from(h))
}

/// Decode `path` (already sniffed as `mime`), apply its EXIF orientation, downscale it to
/// the longest side allowed, and produce the metadata-free image to serve plus a
/// thumbnail.
pub fn image(
    path: &Path,
    mime: &str,
    limits: &ImageLimits,
) -> Result<ProcessedImage, ProcessError> {
    let max_side = limits.max_side;
    let (mut decoder, format) = checked_decoder(path, mime, max_side)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    if img.width().max(img.height()) > max_side {
        img = img.resize(max_side, max_side, image::imageops::FilterType::Triangle);
    }

    let cleaned = match format {
        ImageFormat::Gif => None,
        ImageFormat::Jpeg => Some(encode(
            &DynamicImage::ImageRgb8(img.to_rgb8()),
            ImageFormat::Jpeg,
        )?),
        other => Some(encode(&img, other)?),
    };
    let thumb = img.thumbnail(THUMB_SIDE, THUMB_SIDE);
    let (thumbnail, thumbnail_ext) = if thumb.color().has_alpha() {
        (encode(&thumb, ImageFormat::Png)?, "png")
    } else {
        (
            encode(&DynamicImage::ImageRgb8(thumb.to_rgb8()), ImageFormat::Jpeg)?,
            "jpg",
        )
    };
    Ok(ProcessedImage {
        width: img.width(),
        height: img.height(),
        cleaned,
        thumbnail,
        thumbnail_ext,
    })
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, ProcessError> {
    let mut out = Cursor::new(Vec::new());
    let result = if format == ImageFormat::Jpeg {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
        img.write_with_encoder(enc)
    } else {
        img.write_to(&mut out, format)
    };
    result.map_err(|e| ProcessError::Invalid(format!("the image cannot be re-encoded: {e}")))?;
    Ok(out.into_inner())
}

/// What the container says about a video.
#[derive(Debug, Default, PartialEq)]
pub struct VideoInfo {
    pub duration_ms: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// Duration and picture size of an MP4/QuickTime file from its `moov` box (pure Rust; the
/// sample data is never read). WebM and damaged files give an empty [`VideoInfo`]: the
/// message still sends.
pub fn video_info(path: &Path, mime: &str) -> VideoInfo {
    if mime == "video/webm" {
        return VideoInfo::default();
    }
    let parse = || -> Option<VideoInfo> {
        let f = std::fs::File::open(path).ok()?;
        let size = f.metadata().ok()?.len();
        let mp4 = mp4::Mp4Reader::read_header(BufReader::new(f), size).ok()?;
        let video = mp4
            .tracks()
            .values()
            .find(|t| matches!(t.track_type(), Ok(mp4::TrackType::Video)));
        let ms = mp4.duration().as_millis() as u64;
        Some(VideoInfo {
            duration_ms: (ms > 0).then_some(ms),
            width: video.map(|t| u32::from(t.width())).filter(|w| *w > 0),
            height: video.map(|t| u32::from(t.height())).filter(|h| *h > 0),
        })
    };
    // The parser trusts box sizes; a hostile file must not take the process down.
    std::panic::catch_unwind(parse)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A JPEG poster frame of the video, longest side [`THUMB_SIDE`], when `ffmpeg` is on the
/// PATH; `None` otherwise or when it fails (within 20 s).
pub async fn video_thumbnail(path: &Path) -> Option<Vec<u8>> {
    let scale = format!("scale={THUMB_SIDE}:{THUMB_SIDE}:force_original_aspect_ratio=decrease");
    let child = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &scale,
            "-f",
            "image2",
            "-c:v",
            "mjpeg",
            "pipe:1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .ok()?
        .ok()?;
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 418 bytes whose header says 7000×7000 (a real JPEG cut short after its first scan
    /// bytes; decoders fill the rest): the issue 16 "tiny image, huge file".
    const TINY_7000: &[u8] = include_bytes!("../../../tests/fixtures/tiny-header-7000.jpg");

    fn spooled(bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("chatd-img-{}.jpg", uuid::Uuid::new_v4()));
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn the_header_tells_the_pixels_without_decoding() {
        let path = spooled(TINY_7000);
        assert_eq!(
            pixels(&path, "image/jpeg", &ImageLimits::default()).expect("header"),
            49_000_000
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn originals_above_the_longest_side_are_downscaled() {
        let path = spooled(TINY_7000);
        let img = image(&path, "image/jpeg", &ImageLimits::default()).expect("decodes");
        let _ = std::fs::remove_file(path);
        assert_eq!((img.width, img.height), (MAX_SIDE, MAX_SIDE));
        let stored = img.cleaned.expect("re-encoded");
        assert!(
            stored.len() < 5 * 1024 * 1024,
            "{} bytes stored",
            stored.len()
        );
    }
}
