//! YUV4MPEG2 (`.y4m`) video files: uncompressed 4:2:0 frames, the format Chromium's fake camera
//! (`--use-file-for-fake-video-capture`) and most video tools read.

use std::io::{self, Write};

use crate::clip::Frame;

/// Errors writing a video.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    /// The frames do not all have the first one's size, or the size is odd (4:2:0 halves both).
    #[error("frame {index} is {width}×{height}; every frame must be {expected_width}×{expected_height}, both even")]
    Size {
        /// Index of the offending frame.
        index: usize,
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
        /// The first frame's width.
        expected_width: usize,
        /// The first frame's height.
        expected_height: usize,
    },
    /// Writing failed.
    #[error("cannot write the video: {0}")]
    Io(#[from] io::Error),
}

/// Writes `frames` as a Y4M video at `fps` frames per second: 4:2:0 with JPEG (full-range
/// BT.601, tagged `XCOLORRANGE=FULL`) colour, chroma averaged over each 2×2 block.
///
/// # Errors
/// [`Y4mError::Size`] for frames of differing or odd sizes, [`Y4mError::Io`] when writing fails.
pub fn write_y4m<W: Write>(mut out: W, frames: &[Frame], fps: u32) -> Result<(), Y4mError> {
    let Some(first) = frames.first() else {
        return Ok(());
    };
    let (width, height) = (first.width, first.height);
    for (index, frame) in frames.iter().enumerate() {
        if frame.width != width || frame.height != height || width % 2 == 1 || height % 2 == 1 {
            return Err(Y4mError::Size {
                index,
                width: frame.width,
                height: frame.height,
                expected_width: width,
                expected_height: height,
            });
        }
    }
    writeln!(
        out,
        "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL"
    )?;
    for frame in frames {
        out.write_all(b"FRAME\n")?;
        out.write_all(&yuv420(frame))?;
    }
    out.flush()?;
    Ok(())
}

/// The Y plane, then the U and V planes at half resolution.
fn yuv420(frame: &Frame) -> Vec<u8> {
    let (w, h) = (frame.width, frame.height);
    let pixel = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        let [r, g, b] = [0, 1, 2].map(|c| f32::from(frame.rgb[i + c]));
        (r, g, b)
    };
    let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut out = Vec::with_capacity(w * h * 3 / 2);
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = pixel(x, y);
            out.push(to_u8(0.299 * r + 0.587 * g + 0.114 * b));
        }
    }
    let mut u = Vec::with_capacity(w * h / 4);
    let mut v = Vec::with_capacity(w * h / 4);
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = pixel(x + dx, y + dy);
                r += p.0 / 4.0;
                g += p.1 / 4.0;
                b += p.2 / 4.0;
            }
            u.push(to_u8(128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b));
            v.push(to_u8(128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b));
        }
    }
    out.extend(u);
    out.extend(v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: usize, height: usize, rgb: [u8; 3]) -> Frame {
        Frame {
            width,
            height,
            rgb: rgb.repeat(width * height),
        }
    }

    #[test]
    fn header_and_planes() {
        let mut bytes = Vec::new();
        let frames = [solid(4, 2, [255, 0, 0]), solid(4, 2, [255, 255, 255])];
        write_y4m(&mut bytes, &frames, 25).unwrap();
        let header = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420jpeg XCOLORRANGE=FULL\n";
        assert!(bytes.starts_with(header));
        let body = &bytes[header.len()..];
        let frame_bytes = 6 + 4 * 2 + 2 * 2;
        assert_eq!(body.len(), 2 * frame_bytes);
        // Pure red: Y 76, U 85, V 255; white: Y 255, U = V = 128.
        assert_eq!(&body[6..14], &[76; 8]);
        assert_eq!(&body[14..18], &[85, 85, 255, 255]);
        assert_eq!(&body[frame_bytes + 6..frame_bytes + 14], &[255; 8]);
        assert_eq!(&body[frame_bytes + 14..], &[128; 4]);
    }

    #[test]
    fn rejects_odd_or_mixed_sizes() {
        let mut sink = Vec::new();
        let odd = write_y4m(&mut sink, &[solid(3, 2, [0; 3])], 25).unwrap_err();
        assert!(odd.to_string().contains("3×2"), "{odd}");
        let mixed = write_y4m(&mut sink, &[solid(4, 2, [0; 3]), solid(2, 2, [0; 3])], 25);
        assert!(matches!(mixed, Err(Y4mError::Size { index: 1, .. })));
    }
}
