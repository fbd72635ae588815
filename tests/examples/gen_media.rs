//! Write a generated test file for media benchmarks (`scripts/media-bench.sh`):
//! `gen_media photo OUT BYTES` (a noisy JPEG of about BYTES) or `gen_media video OUT MB`.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(out), Some(size)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: gen_media photo OUT BYTES | video OUT MB");
        std::process::exit(2);
    };
    let size: usize = size.parse().expect("a number");
    let bytes = match kind.as_str() {
        // Noise does not compress: about 0.39 bytes per pixel at the encoder's default quality.
        "photo" => {
            let pixels = (size as f64 / 0.39) as u32;
            let w = ((pixels as f64 * 4.0 / 3.0).sqrt()) as u32;
            let h = pixels / w.max(1);
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let img = RgbImage::from_fn(w, h, |x, y| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed & 0x3f) as u8;
                Rgb([(x / 8) as u8 ^ n, (y / 8) as u8 ^ n, 128 ^ n])
            });
            let mut out = Cursor::new(Vec::new());
            DynamicImage::ImageRgb8(img)
                .write_to(&mut out, ImageFormat::Jpeg)
                .expect("encode");
            out.into_inner()
        }
        "video" => chat_e2e::files::mp4(size * 1024 * 1024),
        other => {
            eprintln!("unknown kind {other}");
            std::process::exit(2);
        }
    };
    std::fs::write(out, &bytes).expect("write");
    println!("{out}: {} bytes", bytes.len());
}
