//! Images: JPEG/PNG decoding and raw pixel buffers to RGB ([`RgbImage`]); a video model's
//! preprocessing then applies to them (`costream_models::VideoPreprocess::apply`).

use std::io::Cursor;

pub use costream_models::RgbImage;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::FrameError;
use crate::input::PixelFormat;

fn check_size(width: usize, height: usize, max_pixels: usize) -> Result<(), FrameError> {
    if width == 0 || height == 0 || width.saturating_mul(height) > max_pixels {
        return Err(FrameError::ImageSize {
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

/// A format's decoder: the file and the largest image it may hold, in pixels.
type Decoder = fn(&[u8], usize) -> Result<RgbImage, FrameError>;

/// Decodes a JPEG or PNG image (told apart by their signatures) to RGB.
///
/// # Errors
/// [`FrameError::UnknownEncoding`] for other bytes, [`FrameError::Decode`] for a damaged
/// file, [`FrameError::ImageSize`] for an image of more than `max_pixels` (found in its
/// header, before anything is decoded). A decoder that panics on a malformed file (zune-jpeg
/// 0.5.15 indexes out of range on some, found by fuzzing) is a [`FrameError::Decode`] too.
pub fn decode(bytes: &[u8], max_pixels: usize) -> Result<RgbImage, FrameError> {
    let (format, decoder): (&'static str, Decoder) = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ("JPEG", decode_jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        ("PNG", decode_png)
    } else {
        return Err(FrameError::UnknownEncoding(
            bytes.iter().take(8).copied().collect(),
        ));
    };
    std::panic::catch_unwind(|| decoder(bytes, max_pixels)).unwrap_or_else(|panic| {
        Err(FrameError::Decode {
            format,
            message: format!(
                "the decoder failed on this file: {}",
                crate::engine::panic_message(&panic)
            ),
        })
    })
}

fn decode_jpeg(bytes: &[u8], max_pixels: usize) -> Result<RgbImage, FrameError> {
    let error = |e: &dyn std::fmt::Display| FrameError::Decode {
        format: "JPEG",
        message: e.to_string(),
    };
    let side = 65_535;
    // Strict: a file cut short or damaged inside its scans is an error. The lenient default
    // fills what is missing with grey, so half a frame would become a prediction.
    let options = DecoderOptions::default()
        .set_max_width(side)
        .set_max_height(side)
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| error(&e))?;
    let info = decoder.info().ok_or_else(|| error(&"no image header"))?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    check_size(width, height, max_pixels)?;
    let pixels = decoder.decode().map_err(|e| error(&e))?;
    if !ends_its_last_scan(bytes) {
        return Err(error(
            &"the file ends inside its image data (no end-of-image marker after the last scan)",
        ));
    }
    if pixels.len() != width * height * 3 {
        return Err(error(&format!(
            "decoded {} bytes for {width}×{height} RGB",
            pixels.len()
        )));
    }
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

/// Whether the JPEG's last scan is followed by the end-of-image marker (`FF D9`), as in every
/// whole file: one cut short inside its entropy-coded data has none, and the decoder would
/// fill the missing part instead of failing. Inside scan data a 0xFF byte is always followed
/// by 0x00 or a restart marker, so `FF DA` (start of scan) and `FF D9` found there are real
/// markers; an embedded thumbnail's come before the image's own scans.
fn ends_its_last_scan(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .is_some_and(|last_scan| bytes[last_scan..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

fn decode_png(bytes: &[u8], max_pixels: usize) -> Result<RgbImage, FrameError> {
    let error = |e: &dyn std::fmt::Display| FrameError::Decode {
        format: "PNG",
        message: e.to_string(),
    };
    let limits = png::Limits {
        bytes: max_pixels.saturating_mul(4),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| error(&e))?;
    let (width, height) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(width, height, max_pixels)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| error(&"image too large"))?;
    let mut buffer = vec![0; size];
    let frame = reader.next_frame(&mut buffer).map_err(|e| error(&e))?;
    buffer.truncate(frame.buffer_size());
    let format = match frame.color_type {
        png::ColorType::Grayscale => PixelFormat::Gray8,
        png::ColorType::GrayscaleAlpha => PixelFormat::GrayAlpha8,
        png::ColorType::Rgb => PixelFormat::Rgb8,
        png::ColorType::Rgba => PixelFormat::Rgba8,
        png::ColorType::Indexed => return Err(error(&"palette was not expanded")),
    };
    from_raw(format, width, height, &buffer, max_pixels)
}

/// Converts raw 8-bit pixels of `format` (rows top to bottom, no padding) to RGB; alpha is
/// dropped, gray is repeated over the three channels.
///
/// # Errors
/// [`FrameError::RawLength`] when the byte count does not match, [`FrameError::ImageSize`]
/// for an empty image or one of more than `max_pixels`.
pub fn from_raw(
    format: PixelFormat,
    width: usize,
    height: usize,
    bytes: &[u8],
    max_pixels: usize,
) -> Result<RgbImage, FrameError> {
    check_size(width, height, max_pixels)?;
    let channels = format.channels();
    let expected = width * height * channels;
    if bytes.len() != expected {
        return Err(FrameError::RawLength {
            format: format.name(),
            width,
            height,
            expected,
            found: bytes.len(),
        });
    }
    let pixels = match format {
        PixelFormat::Rgb8 => bytes.to_vec(),
        PixelFormat::Rgba8 => bytes
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        PixelFormat::Gray8 => bytes.iter().flat_map(|&g| [g, g, g]).collect(),
        PixelFormat::GrayAlpha8 => bytes
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
    };
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_IMAGE_PIXELS;

    #[test]
    fn raw_formats_become_rgb() {
        let gray = from_raw(
            PixelFormat::Gray8,
            2,
            1,
            &[10, 20],
            DEFAULT_MAX_IMAGE_PIXELS,
        )
        .unwrap();
        assert_eq!(gray.pixels, [10, 10, 10, 20, 20, 20]);
        let rgba = from_raw(
            PixelFormat::Rgba8,
            1,
            1,
            &[1, 2, 3, 4],
            DEFAULT_MAX_IMAGE_PIXELS,
        )
        .unwrap();
        assert_eq!(rgba.pixels, [1, 2, 3]);
        let err =
            from_raw(PixelFormat::Rgb8, 2, 2, &[0; 11], DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(matches!(
            err,
            FrameError::RawLength {
                expected: 12,
                found: 11,
                ..
            }
        ));
        let err = from_raw(PixelFormat::Rgb8, 0, 2, &[], DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(matches!(err, FrameError::ImageSize { .. }));
    }

    #[test]
    fn a_jpeg_cut_anywhere_in_its_scan_is_refused() {
        let (width, height) = (64u16, 48u16);
        let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height) * 3)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let whole = decode(&jpeg, DEFAULT_MAX_IMAGE_PIXELS).unwrap();
        assert_eq!((whole.width, whole.height), (64, 48));
        // The entropy-coded data starts after the start-of-scan segment (FF DA, length).
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let scan = sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
        for cut in [scan + 1, (scan + jpeg.len()) / 2, jpeg.len() - 40] {
            let err = decode(&jpeg[..cut], DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
            assert!(
                matches!(err, FrameError::Decode { format: "JPEG", .. }),
                "cut at {cut} of {}: {err}",
                jpeg.len()
            );
        }
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_refused_by_its_header() {
        let pixels = vec![128; 40 * 30 * 3];
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(&pixels, 40, 30, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert!(decode(&jpeg, 1200).is_ok());
        let err = decode(&jpeg, 1199).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::ImageSize {
                    width: 40,
                    height: 30,
                    max_pixels: 1199
                }
            ),
            "{err}"
        );
        let err = from_raw(PixelFormat::Rgb8, 40, 30, &pixels, 1199).unwrap_err();
        assert!(matches!(err, FrameError::ImageSize { .. }), "{err}");
    }

    /// A file on which zune-jpeg 0.5.15 panics (found by the `decode_frame` fuzz target).
    #[test]
    fn a_file_the_decoder_panics_on_is_a_decode_error() {
        let file = include_bytes!("../../../fuzz/regressions/jpeg-idct-out-of-range.jpg");
        let err = decode(file, DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(
            matches!(err, FrameError::Decode { format: "JPEG", .. }),
            "{err}"
        );
    }

    #[test]
    fn unknown_and_damaged_encodings_are_named() {
        assert!(matches!(
            decode(b"GIF89a...", DEFAULT_MAX_IMAGE_PIXELS),
            Err(FrameError::UnknownEncoding(_))
        ));
        let err = decode(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16], DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(
            matches!(err, FrameError::Decode { format: "JPEG", .. }),
            "{err}"
        );
        let err = decode(b"\x89PNG\r\n\x1a\n\0\0", DEFAULT_MAX_IMAGE_PIXELS).unwrap_err();
        assert!(
            matches!(err, FrameError::Decode { format: "PNG", .. }),
            "{err}"
        );
    }
}
