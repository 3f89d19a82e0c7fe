//! Reading checkpoint files into [`Weights`]: PyTorch pickles (`.pt`, `.pth`, `.pyth`, with or
//! without a wrapper dict) and safetensors.

use std::path::Path;

use burn::tensor::TensorData;
use burn_store::pytorch::PytorchReader;
use costream_continual::{WeightTensor, Weights};

use crate::error::LoadError;

/// Wrapper keys under which training code stores the state dict, in the order they are tried:
/// PySlowFast and PyTorchVideo (`model_state`), Lightning and many others (`state_dict`),
/// DETR-style training scripts such as OadTR's and CoOadTR's (`model`).
const WRAPPER_KEYS: [&str; 3] = ["model_state", "state_dict", "model"];

/// Reads every tensor of a checkpoint as float32 under its PyTorch key name.
///
/// The format is detected from the content, not the extension: a safetensors file starts with
/// a little-endian header length and `{`; anything else is read as a PyTorch file (zip, tar
/// or legacy pickle, by burn-store's reader, without Python).
///
/// A PyTorch file may wrap the state dict: when its keys are nested under `model_state`,
/// `state_dict` or `model`, only that dict is kept (optimizer state, epoch, pickled
/// arguments or config and other entries are ignored); a `module.` prefix on every key (a saved `DataParallel`) is removed.
///
/// # Errors
/// [`LoadError::Read`] naming the file: it cannot be opened, it is in no known format, a
/// tensor cannot be read, or it holds no tensors at all.
pub fn read_checkpoint(path: &Path) -> Result<Weights, LoadError> {
    let read_error = |reason: String| LoadError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read_error(e.to_string()))?;
    let weights = if looks_like_safetensors(&bytes) {
        Weights::from_safetensors(&bytes, "").map_err(|e| read_error(e.to_string()))?
    } else {
        read_pytorch(path).map_err(read_error)?
    };
    if weights.is_empty() {
        return Err(read_error("it holds no tensors".into()));
    }
    Ok(weights)
}

fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[8] == b'{'
}

fn read_pytorch(path: &Path) -> Result<Weights, String> {
    let reader = PytorchReader::new(path).map_err(|e| format!("not a PyTorch checkpoint: {e}"))?;
    let tensors = reader.into_tensors();
    let prefix = WRAPPER_KEYS
        .iter()
        .map(|k| format!("{k}."))
        .find(|p| tensors.keys().any(|k| k.starts_with(p.as_str())))
        .unwrap_or_default();
    let mut selected: Vec<(String, _)> = tensors
        .into_iter()
        .filter_map(|(k, t)| k.strip_prefix(prefix.as_str()).map(|k| (k.to_string(), t)))
        .collect();
    if !selected.is_empty() && selected.iter().all(|(k, _)| k.starts_with("module.")) {
        for (k, _) in &mut selected {
            k.drain(.."module.".len());
        }
    }
    let mut weights = Weights::new();
    for (key, snapshot) in selected {
        let data = snapshot
            .to_data()
            .map_err(|e| format!("tensor `{key}` cannot be read: {e:?}"))?;
        weights.insert(key.clone(), to_weight_tensor(&key, data)?);
    }
    Ok(weights)
}

fn to_weight_tensor(key: &str, data: TensorData) -> Result<WeightTensor, String> {
    let shape = data.shape.to_vec();
    let dtype = data.dtype;
    let values = data
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| format!("tensor `{key}` of dtype {dtype:?} cannot be read as f32: {e:?}"))?;
    Ok(WeightTensor { shape, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_name_the_path_and_the_reason() {
        let dir = std::env::temp_dir().join(format!("costream-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pyth");
        std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
        let err = read_checkpoint(&garbage).unwrap_err().to_string();
        assert!(err.contains("garbage.pyth"), "{err}");
        assert!(err.contains("not a PyTorch checkpoint"), "{err}");

        let missing = dir.join("missing.pt");
        let err = read_checkpoint(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.pt"), "{err}");

        let truncated = dir.join("truncated.safetensors");
        std::fs::write(&truncated, b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
        let err = read_checkpoint(&truncated).unwrap_err().to_string();
        assert!(err.contains("truncated.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
