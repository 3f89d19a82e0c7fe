//! Reads feature sequences, one vector per frame (e.g. a frozen backbone's per-frame
//! features), from NumPy `.npy` files and safetensors files.
//!
//! Both hold a `[frames, features]` array (a 1-D array is a single frame) of f32 or f64
//! values, either byte order for `.npy` (C or Fortran order); a safetensors file holds one
//! tensor, or names it with `--tensor`.

use costream_proto::v1::Features;

/// A `[frames, features]` array of values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureRows {
    /// Frames.
    pub(crate) rows: usize,
    /// Values per frame.
    pub(crate) columns: usize,
    /// `rows × columns` values.
    pub(crate) values: Vec<f32>,
}

impl FeatureRows {
    fn new(shape: &[usize], values: Vec<f32>, what: &str) -> Result<FeatureRows, String> {
        let (rows, columns) = match *shape {
            [columns] => (1, columns),
            [rows, columns] => (rows, columns),
            _ => {
                return Err(format!(
                    "{what} has shape {shape:?}; features must be [frames, features] or [features]"
                ))
            }
        };
        if rows == 0 || columns == 0 {
            return Err(format!("{what} has shape {shape:?}: no values"));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{what} has a value that is not finite at frame {} feature {}",
                i / columns,
                i % columns
            ));
        }
        Ok(FeatureRows {
            rows,
            columns,
            values,
        })
    }

    /// The frames as wire payloads.
    pub(crate) fn into_frames(self) -> Vec<Features> {
        self.values
            .chunks(self.columns)
            .map(|row| Features {
                values: row.to_vec(),
            })
            .collect()
    }
}

/// An element type both formats store.
#[derive(Debug, Clone, Copy)]
enum Element {
    F32 { little_endian: bool },
    F64 { little_endian: bool },
}

impl Element {
    fn size(self) -> usize {
        match self {
            Element::F32 { .. } => 4,
            Element::F64 { .. } => 8,
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Element::F32 { little_endian } => bytes
                .chunks_exact(4)
                .map(|b| {
                    let b = [b[0], b[1], b[2], b[3]];
                    if little_endian {
                        f32::from_le_bytes(b)
                    } else {
                        f32::from_be_bytes(b)
                    }
                })
                .collect(),
            Element::F64 { little_endian } => bytes
                .chunks_exact(8)
                .map(|b| {
                    let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                    (if little_endian {
                        f64::from_le_bytes(b)
                    } else {
                        f64::from_be_bytes(b)
                    }) as f32
                })
                .collect(),
        }
    }
}

/// The array of a `.npy` file.
///
/// # Errors
/// A message naming what is wrong: the magic, the header, the type, the shape or the size.
pub(crate) fn from_npy(bytes: &[u8]) -> Result<FeatureRows, String> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not a .npy file: it does not start with \\x93NUMPY")?;
    let (header_len, rest) = match rest {
        [1, _, a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        [2 | 3, _, a, b, c, d, rest @ ..] => (
            usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX),
            rest,
        ),
        [major, ..] => return Err(format!(".npy format version {major} is not supported")),
        [] => return Err("the .npy file is cut short".into()),
    };
    if rest.len() < header_len {
        return Err("the .npy header is cut short".into());
    }
    let (header, data) = rest.split_at(header_len);
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let element = match descr {
        "<f4" | "|f4" | "=f4" => Element::F32 {
            little_endian: true,
        },
        ">f4" => Element::F32 {
            little_endian: false,
        },
        "<f8" | "=f8" => Element::F64 {
            little_endian: true,
        },
        ">f8" => Element::F64 {
            little_endian: false,
        },
        other => {
            return Err(format!(
                "the .npy array's type `{other}` is not supported (float32 or float64)"
            ))
        }
    };
    let fortran = match dict_value(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => {
            return Err(format!(
                "the .npy header's fortran_order `{other}` is not a bool"
            ))
        }
    };
    let shape_text = dict_value(header, "shape")?;
    let shape = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| format!("the .npy header's shape `{shape_text}` is not a tuple of sizes"))?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    let expected = count
        .checked_mul(element.size())
        .ok_or("the .npy shape overflows")?;
    if data.len() != expected {
        return Err(format!(
            "the .npy data holds {} bytes; shape {shape:?} of {descr} needs {expected}",
            data.len()
        ));
    }
    let mut values = element.decode(data);
    if fortran && shape.len() == 2 {
        let (rows, columns) = (shape[0], shape[1]);
        values = (0..rows * columns)
            .map(|i| values[(i % columns) * rows + i / columns])
            .collect();
    }
    FeatureRows::new(&shape, values, "the .npy array")
}

/// The text of `key`'s value in a `.npy` header (a Python dict literal).
fn dict_value<'h>(header: &'h str, key: &str) -> Result<&'h str, String> {
    let missing = || format!("the .npy header has no `{key}`");
    let start = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))
        .ok_or_else(missing)?;
    let after = &header[start + key.len() + 2..];
    let value = after
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(missing)?
        .trim_start();
    let end = if value.starts_with('(') {
        value.find(')').map(|i| i + 1)
    } else {
        value.find([',', '}'])
    }
    .ok_or_else(missing)?;
    Ok(value[..end].trim())
}

/// The array of a safetensors file: its only tensor, or `name`.
///
/// # Errors
/// A message naming what is wrong: the file, the tensor, its type or its shape.
pub(crate) fn from_safetensors(bytes: &[u8], name: Option<&str>) -> Result<FeatureRows, String> {
    let tensors = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a readable safetensors file: {e}"))?;
    let names = tensors.names();
    let name = match name {
        Some(name) => name.to_string(),
        None if names.len() == 1 => names[0].to_string(),
        None => {
            let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            names.sort_unstable();
            return Err(format!(
                "the safetensors file holds {} tensors ({}); name one with --tensor",
                names.len(),
                names.join(", ")
            ));
        }
    };
    let tensor = tensors
        .tensor(&name)
        .map_err(|_| format!("the safetensors file has no tensor `{name}`"))?;
    let element = match tensor.dtype() {
        safetensors::Dtype::F32 => Element::F32 {
            little_endian: true,
        },
        safetensors::Dtype::F64 => Element::F64 {
            little_endian: true,
        },
        other => {
            return Err(format!(
                "tensor `{name}` is {other:?}; features must be F32 or F64"
            ))
        }
    };
    FeatureRows::new(
        tensor.shape(),
        element.decode(tensor.data()),
        &format!("tensor `{name}`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut header = header.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_npy_rows_in_c_and_fortran_order_and_f64() {
        let c = from_npy(&npy(
            "<f4",
            false,
            "(2, 3)",
            &f32_bytes(&[1., 2., 3., 4., 5., 6.]),
        ))
        .unwrap();
        assert_eq!((c.rows, c.columns), (2, 3));
        assert_eq!(c.values, vec![1., 2., 3., 4., 5., 6.]);
        let f = from_npy(&npy(
            "<f4",
            true,
            "(2, 3)",
            &f32_bytes(&[1., 4., 2., 5., 3., 6.]),
        ))
        .unwrap();
        assert_eq!(f.values, c.values);
        let data: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let single = from_npy(&npy(">f8", false, "(2,)", &data)).unwrap();
        assert_eq!((single.rows, single.values.clone()), (1, vec![0.5, -2.0]));
        assert_eq!(c.into_frames()[1].values, vec![4., 5., 6.]);
    }

    #[test]
    fn reads_safetensors_by_name_or_alone() {
        let one = f32_bytes(&[1., 2., 3., 4.]);
        let other = f32_bytes(&[9.]);
        let views = vec![
            (
                "features",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &one)
                    .unwrap(),
            ),
            (
                "other",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &other)
                    .unwrap(),
            ),
        ];
        let file = safetensors::serialize(views, None).unwrap();
        let rows = from_safetensors(&file, Some("features")).unwrap();
        assert_eq!(
            (rows.rows, rows.columns, rows.values),
            (2, 2, vec![1., 2., 3., 4.])
        );
        let err = from_safetensors(&file, None).unwrap_err();
        assert!(err.contains("holds 2 tensors (features, other)"), "{err}");
        assert!(from_safetensors(&file, Some("x"))
            .unwrap_err()
            .contains("no tensor `x`"));
    }

    #[test]
    fn names_what_is_wrong() {
        let err = |bytes: &[u8]| from_npy(bytes).unwrap_err();
        assert!(err(b"PK\x03\x04").contains("not a .npy file"));
        assert!(err(&npy("<i4", false, "(1,)", &[0; 4])).contains("`<i4` is not supported"));
        assert!(err(&npy("<f4", false, "(2, 2)", &[0; 12])).contains("needs 16"));
        assert!(err(&npy("<f4", false, "(1, 1, 1)", &[0; 4])).contains("[frames, features]"));
        let nan = f32_bytes(&[1.0, f32::NAN]);
        assert!(err(&npy("<f4", false, "(1, 2)", &nan)).contains("frame 0 feature 1"));
        assert!(from_safetensors(b"junk", None)
            .unwrap_err()
            .contains("not a readable"));
    }
}
