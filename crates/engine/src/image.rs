//! Images: JPEG/PNG decoding and raw pixel buffers to RGB, then a video model's
//! preprocessing (short-side resize, centre crop, normalisation) in one pass.

use std::io::Cursor;

use costream_models::VideoPreprocess;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::FrameError;
use crate::input::PixelFormat;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

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

/// A video model's input frame from an image: the short side resized to
/// `spec.short_side` (bilinear, as PyTorch's `interpolate(mode="bilinear",
/// align_corners=False)` without antialiasing, the zoos' evaluation transform), the long side
/// scaled to `floor(long · short_side / short)`; a centre crop of `spec.crop` (offsets rounded
/// up, as PySlowFast's `uniform_crop`); values scaled to [0, 1] and normalised per channel.
/// Only the cropped pixels are interpolated.
///
/// # Shapes
/// - output: `[3, crop, crop]`, channel-major (RGB planes)
pub fn video_input(image: &RgbImage, spec: &VideoPreprocess) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    let short = w.min(h);
    let scaled = |side: usize| {
        if side == short {
            spec.short_side
        } else {
            // PyTorchVideo's short_side_scale: floor(long / short * size).
            ((side as f64 / short as f64) * spec.short_side as f64).floor() as usize
        }
    };
    let (out_w, out_h) = (scaled(w), scaled(h));
    let crop = spec.crop;
    let x0 = out_w.saturating_sub(crop).div_ceil(2);
    let y0 = out_h.saturating_sub(crop).div_ceil(2);
    let xs: Vec<Tap> = (0..crop).map(|x| Tap::new(x0 + x, w, out_w)).collect();
    let ys: Vec<Tap> = (0..crop).map(|y| Tap::new(y0 + y, h, out_h)).collect();
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.mean[c] / spec.std[c]);
    let plane = crop * crop;
    let mut out = vec![0.0f32; 3 * plane];
    let px = |x: usize, y: usize, c: usize| f32::from(image.pixels[(y * w + x) * 3 + c]);
    for (oy, ty) in ys.iter().enumerate() {
        for (ox, tx) in xs.iter().enumerate() {
            for c in 0..3 {
                let top = px(tx.lo, ty.lo, c) * (1.0 - tx.frac) + px(tx.hi, ty.lo, c) * tx.frac;
                let bottom = px(tx.lo, ty.hi, c) * (1.0 - tx.frac) + px(tx.hi, ty.hi, c) * tx.frac;
                let value = top * (1.0 - ty.frac) + bottom * ty.frac;
                out[c * plane + oy * crop + ox] = value * scale[c] - shift[c];
            }
        }
    }
    out
}

/// The two source pixels and the weight of the second for one output coordinate.
struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

impl Tap {
    /// Output coordinate `out` of a resize from `size_in` to `size_out` samples
    /// (half-pixel centres; negative source positions clamp to 0, as PyTorch). An output
    /// beyond the resized image (a crop larger than it) clamps to the last pixel.
    fn new(out: usize, size_in: usize, size_out: usize) -> Tap {
        let ratio = size_in as f64 / size_out.max(1) as f64;
        let src = ((out as f64 + 0.5) * ratio - 0.5).max(0.0);
        let lo = (src.floor() as usize).min(size_in - 1);
        let hi = (lo + 1).min(size_in - 1);
        let frac = if lo == size_in - 1 {
            0.0
        } else {
            (src - lo as f64) as f32
        };
        Tap { lo, hi, frac }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_IMAGE_PIXELS;

    fn gradient(width: usize, height: usize) -> RgbImage {
        let pixels = (0..height)
            .flat_map(|y| (0..width).flat_map(move |x| [(x * 7) as u8, (y * 5) as u8, 200]))
            .collect();
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    #[test]
    fn same_size_input_is_only_normalised() {
        let image = gradient(8, 8);
        let spec = VideoPreprocess::kinetics(8, 1);
        let out = video_input(&image, &spec);
        for y in 0..8 {
            for x in 0..8 {
                for c in 0..3 {
                    let expected = spec.normalise(c, image.pixels[(y * 8 + x) * 3 + c]);
                    assert!((out[c * 64 + y * 8 + x] - expected).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn halving_averages_pixel_pairs_and_crops_the_centre() {
        // 8×4 → short side 2: 4×2, centre crop 2×2 starts at x = 1 of the resized image.
        let image = gradient(8, 4);
        let spec = VideoPreprocess {
            mean: [0.0; 3],
            std: [1.0; 3],
            ..VideoPreprocess::kinetics(2, 1)
        };
        let out = video_input(&image, &spec);
        // Resized x = 1 samples source x = 2.5: the mean of columns 2 and 3 (red = 7x).
        let red = |v: f32| v * 255.0;
        assert!((red(out[0]) - 17.5).abs() < 1e-3, "{}", red(out[0]));
        assert!((red(out[1]) - 31.5).abs() < 1e-3);
        // Resized y = 1 samples source y = 2.5 (green = 5y).
        assert!((red(out[4 + 2]) - 12.5).abs() < 1e-3, "{}", red(out[6]));
        assert!((red(out[8]) - 200.0).abs() < 1e-3);
    }

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
