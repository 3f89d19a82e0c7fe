//! Reading reference files (golden and interop `*.safetensors`): tensors, weights, metadata.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use costream_continual::{WeightTensor, Weights};
use safetensors::SafeTensors;

/// One reference file: its tensors (as f32), the weights stored under `weights.`, and its
/// metadata strings.
pub struct GoldenCase {
    /// The case name (`case` metadata, else the file stem).
    pub case: String,
    /// Every metadata string.
    pub metadata: HashMap<String, String>,
    /// Every tensor outside `weights.`, by name.
    pub tensors: HashMap<String, WeightTensor>,
    /// The module weights, by PyTorch key (prefix `weights.` removed).
    pub weights: Weights,
}

impl GoldenCase {
    /// Reads a reference file.
    ///
    /// # Errors
    /// A message naming the file when it cannot be read or parsed.
    pub fn read(path: &Path) -> Result<GoldenCase, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let weights = Weights::from_safetensors(&bytes, "weights.").map_err(|e| e.to_string())?;
        let mut all = Weights::from_safetensors(&bytes, "").map_err(|e| e.to_string())?;
        let mut tensors = HashMap::new();
        for key in all.remaining() {
            if key.starts_with("weights.") {
                continue;
            }
            let t = all
                .take_raw(&key, &all_shape(&bytes, &key)?)
                .map_err(|e| e.to_string())?;
            tensors.insert(key, t);
        }
        let case = metadata.get("case").cloned().unwrap_or_else(|| {
            path.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        });
        Ok(GoldenCase {
            case,
            metadata,
            tensors,
            weights,
        })
    }

    /// The tensor `key`.
    ///
    /// # Errors
    /// When the file has no such tensor.
    pub fn tensor(&self, key: &str) -> Result<&WeightTensor, String> {
        self.tensors
            .get(key)
            .ok_or_else(|| format!("golden file has no `{key}`"))
    }

    /// A stored tensor in the canonical 5-D layout: `[B, C, T]` → `[B, C, T, 1, 1]`,
    /// `[B, C, T, V]` → `[B, C, T, V, 1]`.
    ///
    /// # Errors
    /// When the tensor is missing or its rank is not 2 to 5.
    pub fn clip<B: Backend>(&self, key: &str, device: &B::Device) -> Result<Tensor<B, 5>, String> {
        let t = self.tensor(key)?;
        let mut shape = [1usize; 5];
        if t.shape.len() > 5 || t.shape.len() < 2 {
            return Err(format!("`{key}` has rank {}", t.shape.len()));
        }
        shape[..t.shape.len()].copy_from_slice(&t.shape);
        Ok(Tensor::from_data(
            TensorData::new(t.values.clone(), shape),
            device,
        ))
    }

    /// The metadata string `key` parsed as JSON (`Null` when absent or not JSON).
    pub fn json(&self, key: &str) -> serde_json::Value {
        self.metadata
            .get(key)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

fn all_shape(bytes: &[u8], key: &str) -> Result<Vec<usize>, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    Ok(file
        .tensor(key)
        .map_err(|e| e.to_string())?
        .shape()
        .to_vec())
}
