//! Reading golden files: tensors, metadata and weights.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use costream_continual::{WeightTensor, Weights};
use safetensors::SafeTensors;

/// One golden case: its tensors (as f32) and its metadata.
pub struct GoldenCase {
    pub case: String,
    pub metadata: HashMap<String, String>,
    pub tensors: HashMap<String, WeightTensor>,
    pub weights: Weights,
}

impl GoldenCase {
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
        let case = metadata
            .get("case")
            .cloned()
            .unwrap_or_else(|| path.file_stem().unwrap().to_string_lossy().into_owned());
        Ok(GoldenCase {
            case,
            metadata,
            tensors,
            weights,
        })
    }

    pub fn tensor(&self, key: &str) -> Result<&WeightTensor, String> {
        self.tensors
            .get(key)
            .ok_or_else(|| format!("golden file has no `{key}`"))
    }

    /// A stored tensor in the canonical 5-D layout: `[B, C, T]` → `[B, C, T, 1, 1]`,
    /// `[B, C, T, V]` → `[B, C, T, V, 1]`.
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
