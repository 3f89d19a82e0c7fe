//! Splits an MJPEG stream (`.mjpeg`/`.mjpg`: JPEG files back to back, as cameras and
//! `ffmpeg -f mjpeg` write them) into its JPEG frames, by walking each file's marker segments,
//! so that markers inside metadata (an EXIF thumbnail's own end marker) do not cut a frame.

use std::io::Read;

/// The largest JPEG frame accepted.
const MAX_FRAME_BYTES: usize = 64 << 20;

/// Reads JPEG frames one by one from an MJPEG stream.
#[derive(Debug)]
pub(crate) struct MjpegReader<R> {
    input: std::io::Bytes<std::io::BufReader<R>>,
    frames_read: usize,
}

impl<R: Read> MjpegReader<R> {
    /// A reader of `input`.
    pub(crate) fn new(input: R) -> MjpegReader<R> {
        MjpegReader {
            input: std::io::BufReader::new(input).bytes(),
            frames_read: 0,
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, String> {
        self.input
            .next()
            .transpose()
            .map_err(|e| format!("cannot read the MJPEG file: {e}"))
    }

    /// The next byte of frame `index`, which must not end here.
    fn need(&mut self, frame: &mut Vec<u8>) -> Result<u8, String> {
        let index = self.frames_read;
        let byte = self
            .byte()?
            .ok_or_else(|| format!("MJPEG frame {index} is cut short"))?;
        if frame.len() >= MAX_FRAME_BYTES {
            return Err(format!(
                "MJPEG frame {index} is larger than {} MiB",
                MAX_FRAME_BYTES >> 20
            ));
        }
        frame.push(byte);
        Ok(byte)
    }

    /// The next JPEG file, or `None` at the end of the stream.
    ///
    /// # Errors
    /// A message naming the frame when the stream is not JPEG or a frame is cut short.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>, String> {
        let index = self.frames_read;
        // Padding between frames (some writers add newlines or zeros) is skipped.
        let first = loop {
            match self.byte()? {
                None => return Ok(None),
                Some(0xFF) => break 0xFF,
                Some(b'\r' | b'\n' | 0) => {}
                Some(other) => {
                    return Err(format!(
                        "MJPEG frame {index} does not start with a JPEG marker (byte {other:#04x})"
                    ))
                }
            }
        };
        let mut frame = vec![first];
        if self.need(&mut frame)? != 0xD8 {
            return Err(format!(
                "MJPEG frame {index} does not start with a JPEG start-of-image marker"
            ));
        }
        self.segments(&mut frame)?;
        self.frames_read += 1;
        Ok(Some(frame))
    }

    /// Reads marker segments up to and including the end-of-image marker.
    fn segments(&mut self, frame: &mut Vec<u8>) -> Result<(), String> {
        let index = self.frames_read;
        loop {
            if self.need(frame)? != 0xFF {
                return Err(format!(
                    "MJPEG frame {index} has data where a JPEG marker belongs"
                ));
            }
            let mut marker = self.need(frame)?;
            while marker == 0xFF {
                marker = self.need(frame)?;
            }
            match marker {
                0xD9 => return Ok(()),
                // Markers without a length.
                0x01 | 0xD0..=0xD7 => {}
                _ => {
                    let length = u16::from_be_bytes([self.need(frame)?, self.need(frame)?]);
                    for _ in 2..length {
                        self.need(frame)?;
                    }
                    if marker == 0xDA {
                        return self.entropy_coded(frame);
                    }
                }
            }
        }
    }

    /// Reads entropy-coded data after a start-of-scan up to the end-of-image marker (further
    /// scans of progressive JPEGs included).
    fn entropy_coded(&mut self, frame: &mut Vec<u8>) -> Result<(), String> {
        loop {
            if self.need(frame)? != 0xFF {
                continue;
            }
            let mut marker = self.need(frame)?;
            while marker == 0xFF {
                marker = self.need(frame)?;
            }
            match marker {
                // Stuffed 0xFF byte, restart markers: still in the scan.
                0x00 | 0xD0..=0xD7 => {}
                0xD9 => return Ok(()),
                // Another segment (a progressive JPEG's next tables and scan).
                _ => {
                    let length = u16::from_be_bytes([self.need(frame)?, self.need(frame)?]);
                    for _ in 2..length {
                        self.need(frame)?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(side: u16, seed: u8) -> Vec<u8> {
        let pixels: Vec<u8> = (0..usize::from(side) * usize::from(side) * 3)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&pixels, side, side, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn splits_back_to_back_jpegs_with_padding_between() {
        let frames = [jpeg(16, 3), jpeg(24, 7), jpeg(8, 11)];
        let mut stream = Vec::new();
        for frame in &frames {
            stream.extend_from_slice(frame);
            stream.extend_from_slice(b"\r\n");
        }
        let mut reader = MjpegReader::new(stream.as_slice());
        for frame in &frames {
            assert_eq!(reader.next_frame().unwrap().as_ref(), Some(frame));
        }
        assert_eq!(reader.next_frame().unwrap(), None);
    }

    #[test]
    fn an_end_marker_inside_metadata_does_not_cut_the_frame() {
        let inner = jpeg(8, 5);
        let mut with_thumbnail = jpeg(16, 9);
        // An APP1 segment right after SOI holding a whole JPEG (like an EXIF thumbnail).
        let length = u16::try_from(inner.len() + 2).unwrap().to_be_bytes();
        let segment = [&[0xFF, 0xE1, length[0], length[1]][..], &inner].concat();
        with_thumbnail.splice(2..2, segment);
        let stream = [with_thumbnail.clone(), jpeg(8, 2)].concat();
        let mut reader = MjpegReader::new(stream.as_slice());
        assert_eq!(reader.next_frame().unwrap(), Some(with_thumbnail));
        assert!(reader.next_frame().unwrap().is_some());
    }

    #[test]
    fn names_what_is_wrong() {
        let err = |bytes: &[u8]| MjpegReader::new(bytes).next_frame().unwrap_err();
        assert!(err(b"GIF89a").contains("does not start with a JPEG marker"));
        assert!(err(&[0xFF, 0xD9]).contains("start-of-image"));
        let jpeg = jpeg(8, 1);
        assert!(err(&jpeg[..jpeg.len() - 10]).contains("frame 0 is cut short"));
    }
}
