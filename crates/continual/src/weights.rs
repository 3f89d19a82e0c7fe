//! Weights by PyTorch key names: a checkpoint's tensors, taken one by one by the modules that
//! own them, so that a missing, unused or mis-shaped key is an error that names it.

use std::collections::BTreeMap;

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

use crate::error::WeightError;

/// One tensor of a checkpoint, as float32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// The tensor's shape as stored.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// A checkpoint's tensors under their PyTorch key names, with a record of which were taken.
///
/// By default a module's key must equal the checkpoint's. [`Weights::flattened`] addresses
/// them instead by their *flat* names (numeric parts dropped, see [`flatten_key`]), which is
/// how continual-inference loads an offline checkpoint into a continual network whose
/// containers add numbered levels (`load_state_dict(..., flatten=True)`).
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: BTreeMap<String, WeightTensor>,
    flat: bool,
}

impl Weights {
    /// An empty set of weights.
    pub fn new() -> Self {
        Weights::default()
    }

    /// Adds (or replaces) a tensor.
    pub fn insert(&mut self, key: impl Into<String>, tensor: WeightTensor) {
        self.tensors.insert(key.into(), tensor);
    }

    /// Reads the tensors of a safetensors file whose names start with `prefix`, with the prefix
    /// removed (e.g. `"weights."` for the golden files; `""` for all tensors). Float and integer
    /// tensors are converted to float32 (integer buffers such as BatchNorm's
    /// `num_batches_tracked` are read and then ignored by their module).
    ///
    /// # Errors
    /// [`WeightError::Format`] if the bytes are not safetensors, [`WeightError::Dtype`] for a
    /// tensor that is not a number type.
    pub fn from_safetensors(bytes: &[u8], prefix: &str) -> Result<Weights, WeightError> {
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| WeightError::Format(e.to_string()))?;
        let mut weights = Weights::new();
        for (name, view) in file.tensors() {
            let Some(key) = name.strip_prefix(prefix) else {
                continue;
            };
            let values = to_f32(view.dtype(), view.data()).ok_or_else(|| WeightError::Dtype {
                key: key.to_string(),
                dtype: format!("{:?}", view.dtype()),
            })?;
            weights.insert(
                key,
                WeightTensor {
                    shape: view.shape().to_vec(),
                    values,
                },
            );
        }
        Ok(weights)
    }

    /// Adds (or replaces) the tensor `key` with the values of `tensor`, stored with the shape
    /// `stored` (a checkpoint layout of the same number of elements, e.g. a `Conv2d` weight's
    /// four dimensions for a five-dimensional kernel).
    ///
    /// # Panics
    /// If `stored` does not hold as many elements as `tensor`: a bug in the calling module.
    pub fn put<B: Backend, const D: usize>(
        &mut self,
        key: impl Into<String>,
        tensor: Tensor<B, D>,
        stored: &[usize],
    ) {
        let values: Vec<f32> = tensor
            .into_data()
            .convert::<f32>()
            .into_vec()
            .expect("float data converts to f32: this is a bug");
        assert_eq!(
            values.len(),
            stored.iter().product::<usize>(),
            "stored shape {stored:?} does not fit the tensor: this is a bug"
        );
        self.insert(
            key,
            WeightTensor {
                shape: stored.to_vec(),
                values,
            },
        );
    }

    /// The tensors as a safetensors file (float32, little-endian), keys sorted, with `metadata`
    /// in its header.
    ///
    /// # Errors
    /// [`WeightError::Format`] if the serialiser refuses a tensor (it cannot for the shapes
    /// stored here).
    pub fn to_safetensors(
        &self,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Vec<u8>, WeightError> {
        let bytes: Vec<(&str, Vec<u8>, &[usize])> = self
            .tensors
            .iter()
            .map(|(key, t)| {
                let data = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (key.as_str(), data, t.shape.as_slice())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(key, data, shape)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), data)
                    .map(|view| (*key, view))
                    .map_err(|e| WeightError::Format(format!("tensor `{key}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, metadata).map_err(|e| WeightError::Format(e.to_string()))
    }

    /// The same tensors addressed by flat names: each stored key is flattened now, and every
    /// key a module asks for is flattened before the look-up, so
    /// `s2.pathway0_res0.0.1.branch2.a.weight` finds `s2.pathway0_res0.branch2.a.weight`.
    ///
    /// # Errors
    /// [`WeightError::Invalid`] when two stored keys flatten to the same name (the reference
    /// falls back to exact names then; here that is an error that names both keys).
    pub fn flattened(self) -> Result<Weights, WeightError> {
        let mut tensors = BTreeMap::new();
        let mut original = BTreeMap::new();
        for (key, tensor) in self.tensors {
            let flat = flatten_key(&key);
            if let Some(previous) = original.insert(flat.clone(), key.clone()) {
                return Err(WeightError::Invalid {
                    key,
                    reason: format!("its flat name `{flat}` is also the flat name of `{previous}`"),
                });
            }
            tensors.insert(flat, tensor);
        }
        Ok(Weights {
            tensors,
            flat: true,
        })
    }

    /// The stored key a module's `key` refers to.
    fn resolve<'k>(&self, key: &'k str) -> std::borrow::Cow<'k, str> {
        if self.flat {
            std::borrow::Cow::Owned(flatten_key(key))
        } else {
            std::borrow::Cow::Borrowed(key)
        }
    }

    /// Keys not taken yet, sorted.
    pub fn remaining(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    /// Whether a key is present (and not taken yet).
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(self.resolve(key).as_ref())
    }

    /// Removes and returns the tensor `key`, checking that it has `shape`.
    ///
    /// # Errors
    /// [`WeightError::Missing`] or [`WeightError::Shape`], naming the key.
    pub fn take_raw(&mut self, key: &str, shape: &[usize]) -> Result<WeightTensor, WeightError> {
        let resolved = self.resolve(key);
        let key = resolved.as_ref();
        let tensor = self
            .tensors
            .get(key)
            .ok_or_else(|| WeightError::Missing { key: key.into() })?;
        if tensor.shape != shape {
            return Err(WeightError::Shape {
                key: key.into(),
                expected: shape.to_vec(),
                found: tensor.shape.clone(),
            });
        }
        Ok(self
            .tensors
            .remove(key)
            .expect("key checked above: this is a bug"))
    }

    /// Removes the tensor `key` and makes it a tensor of rank `D` on `device`, checking that
    /// its stored shape is `stored` and reshaping it to `shape` (same number of elements).
    ///
    /// # Errors
    /// [`WeightError::Missing`] or [`WeightError::Shape`], naming the key.
    pub fn take<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        stored: &[usize],
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>, WeightError> {
        let tensor = self.take_raw(key, stored)?;
        Ok(Tensor::from_data(
            TensorData::new(tensor.values, shape),
            device,
        ))
    }

    /// Removes `key` if present, whatever its shape (for bookkeeping entries a module ignores,
    /// such as BatchNorm's `num_batches_tracked`).
    pub fn discard(&mut self, key: &str) {
        let resolved = self.resolve(key).into_owned();
        self.tensors.remove(&resolved);
    }

    /// Renames every key with `rename` (e.g. from one naming family to another); keys for which
    /// it returns `None` are kept as they are.
    ///
    /// # Errors
    /// [`WeightError::Invalid`] when two keys end up with the same name.
    pub fn renamed(self, rename: impl Fn(&str) -> Option<String>) -> Result<Weights, WeightError> {
        let mut tensors = BTreeMap::new();
        for (key, tensor) in self.tensors {
            let new = rename(&key).unwrap_or_else(|| key.clone());
            if tensors.contains_key(&new) {
                return Err(WeightError::Invalid {
                    key,
                    reason: format!("renamed to `{new}`, which another key already has"),
                });
            }
            tensors.insert(new, tensor);
        }
        Ok(Weights {
            tensors,
            flat: self.flat,
        })
    }

    /// The tensors not taken yet, by key (flat keys after [`Weights::flattened`]), sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &WeightTensor)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// Number of tensors not taken yet.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether every tensor was taken (or there were none).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Succeeds when every tensor was taken.
    ///
    /// # Errors
    /// [`WeightError::Unused`] listing the keys no module took.
    pub fn finish(self) -> Result<(), WeightError> {
        if self.tensors.is_empty() {
            Ok(())
        } else {
            Err(WeightError::Unused {
                keys: self.remaining(),
            })
        }
    }
}

/// `prefix.name`, or `name` at the root.
pub fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A key without its purely numeric parts: `s2.pathway0_res0.0.0.0.branch1.weight` →
/// `s2.pathway0_res0.branch1.weight` (continual-inference's flatten rule, `utils.py`).
pub fn flatten_key(key: &str) -> String {
    key.split('.')
        .filter(|part| part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(".")
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    fn chunks<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
            .collect()
    }
    Some(match dtype {
        Dtype::F32 => chunks::<4>(data, f32::from_le_bytes),
        Dtype::F64 => chunks::<8>(data, |b| f64::from_le_bytes(b) as f32),
        Dtype::F16 => chunks::<2>(data, |b| half_to_f32(u16::from_le_bytes(b))),
        Dtype::BF16 => chunks::<2>(data, |b| {
            f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
        }),
        Dtype::I64 => chunks::<8>(data, |b| i64::from_le_bytes(b) as f32),
        Dtype::I32 => chunks::<4>(data, |b| i32::from_le_bytes(b) as f32),
        Dtype::I16 => chunks::<2>(data, |b| i16::from_le_bytes(b) as f32),
        Dtype::I8 => data.iter().map(|&b| b as i8 as f32).collect(),
        Dtype::U8 => data.iter().map(|&b| b as f32).collect(),
        Dtype::BOOL => data.iter().map(|&b| (b != 0) as u8 as f32).collect(),
        _ => return None,
    })
}

/// IEEE half precision to single precision.
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the mantissa.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 - shift + 1) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion_matches_known_values() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert!(half_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn flat_names_drop_numeric_parts_and_resolve_long_keys() {
        assert_eq!(
            flatten_key("s2.pathway0_res0.0.1.branch2.se.1.fc1.weight"),
            "s2.pathway0_res0.branch2.se.fc1.weight"
        );
        let mut w = Weights::new();
        let t = WeightTensor {
            shape: vec![1],
            values: vec![3.0],
        };
        w.insert("s2.pathway0_res0.branch1.weight", t.clone());
        let mut flat = w.clone().flattened().unwrap();
        assert!(flat.contains("s2.pathway0_res0.0.0.0.branch1.weight"));
        assert_eq!(
            flat.take_raw("s2.pathway0_res0.0.0.0.branch1.weight", &[1])
                .unwrap(),
            t
        );
        assert!(flat.finish().is_ok());
        // Exact addressing does not resolve long keys.
        assert!(!w.contains("s2.pathway0_res0.0.0.0.branch1.weight"));
        w.insert("s2.0.pathway0_res0.branch1.weight", t);
        let err = w.flattened().unwrap_err().to_string();
        assert!(err.contains("also the flat name of"), "{err}");
    }

    #[test]
    fn missing_unused_and_misshaped_keys_are_named() {
        let mut w = Weights::new();
        w.insert(
            "a.weight",
            WeightTensor {
                shape: vec![2, 3],
                values: vec![0.0; 6],
            },
        );
        w.insert(
            "b.bias",
            WeightTensor {
                shape: vec![2],
                values: vec![0.0; 2],
            },
        );
        let err = w.take_raw("a.weight", &[3, 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "weight `a.weight` has shape [2, 3], expected [3, 2]"
        );
        let err = w.take_raw("c.weight", &[1]).unwrap_err();
        assert_eq!(err.to_string(), "missing weight `c.weight`");
        assert!(w.take_raw("a.weight", &[2, 3]).is_ok());
        assert_eq!(
            w.finish().unwrap_err().to_string(),
            "unused weights in checkpoint: b.bias"
        );
    }
}
