//! Reads YUV4MPEG2 (`.y4m`) video frame by frame and converts each to RGB.
//!
//! Supported: 4:2:0 (`C420jpeg`, `C420mpeg2`, `C420paldv`, `C420`, the default), 4:2:2
//! (`C422`), 4:4:4 (`C444`) and grey (`Cmono`), 8 bits; BT.601 colour in limited range unless
//! the header says `XCOLORRANGE=FULL` (what ffmpeg and `costream synth` write). Interlacing
//! and chroma siting are ignored: chroma is taken from the nearest sample.

use std::io::{BufRead, Read};

/// How the chroma planes are subsampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chroma {
    /// Half width, half height.
    Half,
    /// Half width, full height.
    HalfWidth,
    /// Full resolution.
    Full,
    /// No chroma planes.
    Mono,
}

impl Chroma {
    /// Chroma plane width and height for a `width`×`height` frame.
    fn plane(self, width: usize, height: usize) -> (usize, usize) {
        match self {
            Chroma::Half => (width.div_ceil(2), height.div_ceil(2)),
            Chroma::HalfWidth => (width.div_ceil(2), height),
            Chroma::Full => (width, height),
            Chroma::Mono => (0, 0),
        }
    }
}

/// A Y4M stream being read.
#[derive(Debug)]
pub(crate) struct Y4mReader<R> {
    input: R,
    /// Frame width in pixels.
    pub(crate) width: usize,
    /// Frame height in pixels.
    pub(crate) height: usize,
    chroma: Chroma,
    full_range: bool,
    frames_read: usize,
    /// Bytes of the stream header, newline included.
    pub(crate) header_bytes: usize,
}

/// The largest frame side accepted (a corrupt header must not allocate gigabytes).
const MAX_SIDE: usize = 16_384;

impl<R: BufRead> Y4mReader<R> {
    /// Reads the stream header.
    ///
    /// # Errors
    /// A message naming what is wrong with the header.
    pub(crate) fn new(mut input: R) -> Result<Y4mReader<R>, String> {
        let header = read_line(&mut input, 1024)?
            .ok_or("the file is empty: a y4m file starts with `YUV4MPEG2`")?;
        let mut tags = header.split(' ');
        if tags.next() != Some("YUV4MPEG2") {
            return Err("not a y4m file: it does not start with `YUV4MPEG2`".into());
        }
        let (mut width, mut height, mut chroma, mut full_range) = (0, 0, Chroma::Half, false);
        for tag in tags.filter(|t| !t.is_empty()) {
            let (key, value) = tag.split_at(1);
            match key {
                "W" => width = parse_side("width (W)", value)?,
                "H" => height = parse_side("height (H)", value)?,
                "C" => {
                    chroma = match value {
                        "420jpeg" | "420mpeg2" | "420paldv" | "420" => Chroma::Half,
                        "422" => Chroma::HalfWidth,
                        "444" => Chroma::Full,
                        "mono" => Chroma::Mono,
                        other => {
                            return Err(format!(
                                "y4m colour space C{other} is not supported (420, 422, 444 or \
                                 mono, 8 bits)"
                            ))
                        }
                    }
                }
                "X" if value == "COLORRANGE=FULL" => full_range = true,
                _ => {}
            }
        }
        if width == 0 || height == 0 {
            return Err("the y4m header has no frame size (W and H)".into());
        }
        Ok(Y4mReader {
            input,
            width,
            height,
            chroma,
            full_range,
            frames_read: 0,
            header_bytes: header.len() + 1,
        })
    }

    /// Bytes of one frame's planes.
    pub(crate) fn frame_bytes(&self) -> usize {
        let (cw, ch) = self.chroma.plane(self.width, self.height);
        self.width * self.height + 2 * cw * ch
    }

    /// The next frame as RGB8 rows, or `None` at the end of the file.
    ///
    /// # Errors
    /// A message naming the frame when its header or data is cut short or malformed.
    pub(crate) fn next_rgb(&mut self) -> Result<Option<Vec<u8>>, String> {
        let index = self.frames_read;
        let Some(line) = read_line(&mut self.input, 1024)? else {
            return Ok(None);
        };
        if line.split(' ').next() != Some("FRAME") {
            return Err(format!(
                "y4m frame {index} does not start with `FRAME` (found {:?})",
                line.chars().take(16).collect::<String>()
            ));
        }
        let mut planes = vec![0; self.frame_bytes()];
        self.input.read_exact(&mut planes).map_err(|e| {
            format!(
                "y4m frame {index} is cut short ({} bytes expected): {e}",
                planes.len()
            )
        })?;
        self.frames_read += 1;
        Ok(Some(self.to_rgb(&planes)))
    }

    /// Converts one frame's planes to RGB8.
    fn to_rgb(&self, planes: &[u8]) -> Vec<u8> {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = self.chroma.plane(w, h);
        let (luma, chroma) = planes.split_at(w * h);
        let (u_plane, v_plane) = chroma.split_at(cw * ch);
        let (sx, sy) = (if cw < w { 2 } else { 1 }, if ch < h { 2 } else { 1 });
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let luma = f32::from(luma[y * w + x]);
                let (u, v) = if self.chroma == Chroma::Mono {
                    (128.0, 128.0)
                } else {
                    let i = (y / sy) * cw + x / sx;
                    (f32::from(u_plane[i]), f32::from(v_plane[i]))
                };
                rgb.extend(bt601_to_rgb(luma, u, v, self.full_range));
            }
        }
        rgb
    }
}

/// One pixel from BT.601 Y′CbCr, full or limited (16–235, 16–240) range.
fn bt601_to_rgb(y: f32, u: f32, v: f32, full_range: bool) -> [u8; 3] {
    let (y, u, v) = if full_range {
        (y, u - 128.0, v - 128.0)
    } else {
        (
            (y - 16.0) * 255.0 / 219.0,
            (u - 128.0) * 255.0 / 224.0,
            (v - 128.0) * 255.0 / 224.0,
        )
    };
    let to_u8 = |c: f32| c.round().clamp(0.0, 255.0) as u8;
    [
        to_u8(y + 1.402 * v),
        to_u8(y - 0.344_136 * u - 0.714_136 * v),
        to_u8(y + 1.772 * u),
    ]
}

fn parse_side(name: &str, value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(side) if (1..=MAX_SIDE).contains(&side) => Ok(side),
        _ => Err(format!(
            "y4m frame {name} `{value}` is not a size from 1 to {MAX_SIDE}"
        )),
    }
}

/// One `\n`-terminated ASCII line of at most `limit` bytes, without the newline; `None` at
/// the end of the input.
fn read_line<R: BufRead>(input: &mut R, limit: usize) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let read = input
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the y4m file: {e}"))?;
    if read == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(format!(
            "a y4m header line is longer than {limit} bytes or cut short"
        ));
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| "a y4m header line is not ASCII".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_synth::{write_y4m, Action, Clip};

    #[test]
    fn reads_back_what_costream_synth_writes() {
        let clip = Clip::random(Action::MovingLeft, 4, 20, 16);
        let frames = clip.frames(3);
        let mut file = Vec::new();
        write_y4m(&mut file, &frames, 25).unwrap();
        let mut reader = Y4mReader::new(file.as_slice()).unwrap();
        assert_eq!((reader.width, reader.height), (20, 16));
        for frame in &frames {
            let rgb = reader.next_rgb().unwrap().unwrap();
            assert_eq!(rgb.len(), frame.rgb.len());
            // 4:2:0 keeps luma per pixel and averages chroma over 2×2 blocks: the mean error
            // is small, the largest bounded by the chroma a block's pixels do not share.
            let errors: Vec<f32> = rgb
                .iter()
                .zip(&frame.rgb)
                .map(|(&a, &b)| (f32::from(a) - f32::from(b)).abs())
                .collect();
            let mean = errors.iter().sum::<f32>() / errors.len() as f32;
            assert!(mean < 12.0, "mean error {mean}");
        }
        assert_eq!(reader.next_rgb().unwrap(), None);
    }

    #[test]
    fn converts_limited_range_grey_and_444() {
        // Limited range: Y 16 is black, 235 white; a mono frame of two pixels.
        let file = b"YUV4MPEG2 W2 H1 Cmono\nFRAME\n\x10\xeb";
        let mut reader = Y4mReader::new(&file[..]).unwrap();
        assert_eq!(
            reader.next_rgb().unwrap().unwrap(),
            vec![0, 0, 0, 255, 255, 255]
        );
        // Full-range 4:4:4 pure red: Y 76, Cb 85, Cr 255.
        let file = b"YUV4MPEG2 W1 H1 C444 XCOLORRANGE=FULL\nFRAME\n\x4c\x55\xff";
        let mut reader = Y4mReader::new(&file[..]).unwrap();
        let rgb = reader.next_rgb().unwrap().unwrap();
        assert!(rgb[0] >= 253 && rgb[1] <= 2 && rgb[2] <= 2, "{rgb:?}");
    }

    #[test]
    fn names_what_is_wrong() {
        let err = |bytes: &[u8]| match Y4mReader::new(bytes) {
            Err(e) => e,
            Ok(mut r) => r.next_rgb().unwrap_err(),
        };
        assert!(err(b"").contains("empty"));
        assert!(err(b"RIFF....\n").contains("not a y4m file"));
        assert!(err(b"YUV4MPEG2 W4\n").contains("no frame size"));
        assert!(err(b"YUV4MPEG2 W4 H0\n").contains("height (H) `0`"));
        assert!(err(b"YUV4MPEG2 W4 H2 C420p10\n").contains("C420p10 is not supported"));
        assert!(err(b"YUV4MPEG2 W2 H2\nFRAME\n\x01\x02").contains("frame 0 is cut short"));
        assert!(err(b"YUV4MPEG2 W2 H2\nFRAMX\n").contains("does not start with `FRAME`"));
    }
}
