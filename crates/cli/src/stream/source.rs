//! What `costream stream` reads: the input kinds, told by the path (or `--kind`), each turned
//! into a sequence of wire frame payloads.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use costream_proto::v1::{frame::Payload, AudioInput, PixelFormat, RawImage};

use super::audio::Recording;
use super::features;
use super::mjpeg::MjpegReader;
use super::skeleton;
use super::y4m::Y4mReader;

/// The kinds of input, and the file extensions that tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputKind {
    /// A folder of `.jpg`/`.jpeg`/`.png` images, streamed in file-name order.
    Images,
    /// A `.y4m` video.
    Y4m,
    /// An `.mjpeg`/`.mjpg` video (JPEG files back to back).
    Mjpeg,
    /// A `.json` skeleton sequence.
    SkeletonJson,
    /// A `.csv` skeleton sequence.
    SkeletonCsv,
    /// A `.npy` feature array.
    Npy,
    /// A `.safetensors` feature tensor.
    Safetensors,
    /// A `.wav` recording, for audio models.
    Wav,
}

impl InputKind {
    /// The kind `path` names: a folder is images, a file goes by its extension.
    ///
    /// # Errors
    /// A message when the path does not exist or its extension is not one of the kinds'.
    pub(crate) fn of(path: &Path) -> Result<InputKind, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            return Ok(InputKind::Images);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        Ok(match extension.as_str() {
            "y4m" => InputKind::Y4m,
            "mjpeg" | "mjpg" => InputKind::Mjpeg,
            "json" => InputKind::SkeletonJson,
            "csv" => InputKind::SkeletonCsv,
            "npy" => InputKind::Npy,
            "safetensors" => InputKind::Safetensors,
            "wav" => InputKind::Wav,
            _ => {
                return Err(format!(
                    "cannot tell what {} holds from its extension: give a folder of images, a \
                     .y4m, .mjpeg, .json or .csv skeleton, .npy, .safetensors or .wav file, or \
                     --kind",
                    path.display()
                ))
            }
        })
    }
}

/// The frames of an input, read one at a time.
pub(crate) struct Frames {
    /// How many frames, when known in advance.
    pub(crate) total: Option<usize>,
    /// A recording's length in samples at the model's rate (`.wav` input).
    pub(crate) audio_samples: Option<usize>,
    next: Box<dyn FnMut() -> Result<Option<Payload>, String> + Send>,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("total", &self.total)
            .finish()
    }
}

impl Frames {
    /// The next frame, or `None` after the last.
    ///
    /// # Errors
    /// A message naming the frame that cannot be read.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Payload>, String> {
        (self.next)()
    }

    /// Frames already read, each made a payload by `payload`.
    fn from_items<T: Send + 'static>(items: Vec<T>, payload: fn(T) -> Payload) -> Frames {
        let total = Some(items.len());
        let mut payloads = items.into_iter().map(payload);
        Frames {
            total,
            audio_samples: None,
            next: Box::new(move || Ok(payloads.next())),
        }
    }
}

/// Opens `path` as `kind`. Video frames larger than `max_raw_bytes` as raw RGB are sent as
/// JPEG instead; `tensor` names a safetensors file's tensor; `audio` is what an audio
/// model's frames must be (from its `ready`).
///
/// # Errors
/// A message naming the file and what is wrong with it, or a recording for a model that
/// takes no audio.
pub(crate) fn open(
    path: &Path,
    kind: InputKind,
    tensor: Option<&str>,
    max_raw_bytes: usize,
    audio: Option<&AudioInput>,
) -> Result<Frames, String> {
    let named = |e: String| format!("{}: {e}", path.display());
    let read = || std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let text =
        || String::from_utf8(read()?).map_err(|_| format!("{} is not UTF-8 text", path.display()));
    Ok(match kind {
        InputKind::Images => images(path)?,
        InputKind::Y4m => {
            let file =
                File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let length = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut reader = Y4mReader::new(BufReader::new(file)).map_err(named)?;
            let (width, height) = (reader.width, reader.height);
            let per_frame = reader.frame_bytes() + b"FRAME\n".len();
            let body = usize::try_from(length)
                .unwrap_or(usize::MAX)
                .saturating_sub(reader.header_bytes);
            let name = path.display().to_string();
            Frames {
                total: Some(body / per_frame),
                audio_samples: None,
                next: Box::new(move || {
                    let rgb = reader.next_rgb().map_err(|e| format!("{name}: {e}"))?;
                    rgb.map(|rgb| rgb_payload(rgb, width, height, max_raw_bytes))
                        .transpose()
                }),
            }
        }
        InputKind::Mjpeg => {
            let file =
                File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let mut reader = MjpegReader::new(file);
            let name = path.display().to_string();
            Frames {
                total: None,
                audio_samples: None,
                next: Box::new(move || {
                    Ok(reader
                        .next_frame()
                        .map_err(|e| format!("{name}: {e}"))?
                        .map(Payload::Encoded))
                }),
            }
        }
        InputKind::SkeletonJson => Frames::from_items(
            skeleton::from_json(&text()?).map_err(named)?,
            Payload::Skeleton,
        ),
        InputKind::SkeletonCsv => Frames::from_items(
            skeleton::from_csv(&text()?).map_err(named)?,
            Payload::Skeleton,
        ),
        InputKind::Npy => Frames::from_items(
            features::from_npy(&read()?).map_err(named)?.into_frames(),
            Payload::Features,
        ),
        InputKind::Safetensors => Frames::from_items(
            features::from_safetensors(&read()?, tensor)
                .map_err(named)?
                .into_frames(),
            Payload::Features,
        ),
        InputKind::Wav => {
            let input = audio.ok_or_else(|| {
                format!(
                    "{} is a recording, and the model takes no audio",
                    path.display()
                )
            })?;
            let recording = Recording::read(path, input.sample_rate)?;
            let mut frames = Frames::from_items(recording.frames(input), |payload| payload);
            frames.audio_samples = Some(recording.samples.len());
            frames
        }
    })
}

/// A folder's images in file-name order, read as they are sent.
fn images(folder: &Path) -> Result<Frames, String> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", folder.display()))?
            .path();
        let image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()));
        if image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(format!(
            "{} holds no .jpg, .jpeg or .png images",
            folder.display()
        ));
    }
    files.sort();
    let total = Some(files.len());
    let mut files = files.into_iter();
    Ok(Frames {
        total,
        audio_samples: None,
        next: Box::new(move || {
            files
                .next()
                .map(|path| {
                    std::fs::read(&path)
                        .map(Payload::Encoded)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))
                })
                .transpose()
        }),
    })
}

/// An RGB frame as raw pixels, or as JPEG when the raw form exceeds `max_raw_bytes`.
fn rgb_payload(
    rgb: Vec<u8>,
    width: usize,
    height: usize,
    max_raw_bytes: usize,
) -> Result<Payload, String> {
    let too_big = || format!("a {width}×{height} frame is too large to send");
    if rgb.len() <= max_raw_bytes {
        return Ok(Payload::Raw(RawImage {
            format: PixelFormat::Rgb8 as i32,
            width: u32::try_from(width).map_err(|_| too_big())?,
            height: u32::try_from(height).map_err(|_| too_big())?,
            data: rgb,
        }));
    }
    let (w, h) = (
        u16::try_from(width).map_err(|_| too_big())?,
        u16::try_from(height).map_err(|_| too_big())?,
    );
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("cannot encode a {width}×{height} frame as JPEG: {e}"))?;
    Ok(Payload::Encoded(jpeg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_folder_and_extension() {
        let dir = std::env::temp_dir().join(format!("costream-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(InputKind::of(&dir).unwrap(), InputKind::Images);
        for (name, kind) in [
            ("a.Y4M", InputKind::Y4m),
            ("a.mjpg", InputKind::Mjpeg),
            ("a.json", InputKind::SkeletonJson),
            ("a.csv", InputKind::SkeletonCsv),
            ("a.npy", InputKind::Npy),
            ("a.safetensors", InputKind::Safetensors),
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
            assert_eq!(InputKind::of(&dir.join(name)).unwrap(), kind, "{name}");
        }
        std::fs::write(dir.join("a.mp4"), b"").unwrap();
        let err = InputKind::of(&dir.join("a.mp4")).unwrap_err();
        assert!(err.contains("cannot tell what"), "{err}");
        assert!(InputKind::of(&dir.join("none.y4m"))
            .unwrap_err()
            .contains("cannot read"));
        let err = open(&dir, InputKind::Images, None, 0, None).unwrap_err();
        assert!(err.contains("holds no .jpg"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn large_frames_go_as_jpeg() {
        let rgb = vec![128; 8 * 8 * 3];
        assert!(matches!(
            rgb_payload(rgb.clone(), 8, 8, 192).unwrap(),
            Payload::Raw(_)
        ));
        let Payload::Encoded(jpeg) = rgb_payload(rgb, 8, 8, 191).unwrap() else {
            panic!("expected JPEG");
        };
        assert_eq!(jpeg[..2], [0xFF, 0xD8]);
    }
}
