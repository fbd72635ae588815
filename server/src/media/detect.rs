//! What an upload is, decided from its first bytes (never from the declared type or the
//! file name), and how large that kind may be.

use chat_protocol::rest::MessageType;

/// Bytes of an upload's head that detection looks at.
pub const SNIFF_LEN: usize = 8 * 1024;

pub const IMAGE_MAX: u64 = 10 * 1024 * 1024;
pub const VIDEO_MAX: u64 = 100 * 1024 * 1024;
pub const FILE_MAX: u64 = 50 * 1024 * 1024;

/// An accepted type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub kind: MessageType,
    pub mime: &'static str,
    /// Extension of stored objects (keys are random; the extension only tells the local
    /// file server the content type).
    pub ext: &'static str,
}

impl Detected {
    pub fn max_size(&self) -> u64 {
        match self.kind {
            MessageType::Image => IMAGE_MAX,
            MessageType::Video => VIDEO_MAX,
            _ => FILE_MAX,
        }
    }
}

const fn d(kind: MessageType, mime: &'static str, ext: &'static str) -> Detected {
    Detected { kind, mime, ext }
}

/// Classify an upload from its head (up to [`SNIFF_LEN`] bytes; the whole file when it is
/// shorter). `Err` says why it is refused, in words for the client.
pub fn detect(head: &[u8]) -> Result<Detected, String> {
    if head.is_empty() {
        return Err("the file is empty".into());
    }
    if looks_like_markup_or_script(head) {
        return Err("HTML, SVG, XML and scripts are not accepted".into());
    }
    let Some(t) = infer::get(head) else {
        return plain_text(head);
    };
    use MessageType::{File, Image, Video};
    Ok(match t.mime_type() {
        "image/jpeg" => d(Image, "image/jpeg", "jpg"),
        "image/png" => d(Image, "image/png", "png"),
        "image/gif" => d(Image, "image/gif", "gif"),
        "image/webp" => d(Image, "image/webp", "webp"),
        "video/mp4" => d(Video, "video/mp4", "mp4"),
        "video/quicktime" => d(Video, "video/quicktime", "mov"),
        "video/webm" => d(Video, "video/webm", "webm"),
        "application/pdf" => d(File, "application/pdf", "pdf"),
        "application/msword" => d(File, "application/msword", "doc"),
        "application/vnd.ms-excel" => d(File, "application/vnd.ms-excel", "xls"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => d(
            File,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => d(
            File,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        "application/zip" => d(File, "application/zip", "zip"),
        // infer reports .doc and .xls both as an OLE compound file on some inputs.
        "application/x-ole-storage" => d(File, "application/msword", "doc"),
        other => return Err(format!("files of type {other} are not accepted")),
    })
}

/// Plain text: valid UTF-8 (a multi-byte character may be cut at the end of the head),
/// no NUL or other binary control bytes, not a script.
fn plain_text(head: &[u8]) -> Result<Detected, String> {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() >= SNIFF_LEN,
    };
    let binary = head
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c));
    if !valid || binary {
        return Err(
            "the file type is not recognised; accepted: images (jpeg, png, gif, webp), \
             videos (mp4, quicktime, webm), pdf, doc, docx, xls, xlsx, zip, txt"
                .into(),
        );
    }
    if head.starts_with(b"#!") {
        return Err("scripts are not accepted".into());
    }
    Ok(d(MessageType::File, "text/plain", "txt"))
}

/// Markup a browser could render or run, whatever the file claims to be: checked on the
/// head after a BOM and leading whitespace, and for the tell-tale tags anywhere in it.
fn looks_like_markup_or_script(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    let lower: Vec<u8> = text.iter().take(1024).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<?xml") || lower.starts_with(b"<!doctype") || lower.starts_with(b"<svg")
    {
        return true;
    }
    // A text file may mention tags in prose; these at the very start are a document.
    const TAGS: [&[u8]; 6] = [
        b"<html", b"<script", b"<head", b"<body", b"<iframe", b"<object",
    ];
    TAGS.iter().any(|t| lower.starts_with(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_bytes_not_by_name() {
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap().mime,
            "image/png"
        );
        assert_eq!(detect(b"%PDF-1.7\n").unwrap().kind, MessageType::File);
        assert_eq!(detect(b"hello\nworld\n").unwrap().mime, "text/plain");
        for bad in [
            &b""[..],
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            b"\xef\xbb\xbf  <!DOCTYPE html><html></html>",
            b"<?xml version='1.0'?><svg/>",
            b"<script>alert(1)</script>",
            b"#!/bin/sh\nrm -rf /\n",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff",
            b"\0\x01\x02binary",
        ] {
            assert!(
                detect(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
