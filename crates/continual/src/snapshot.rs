//! Versioned byte snapshots of a [`State`], for resuming a stream elsewhere or later.
//!
//! Layout (little-endian): the magic `b"COSTATE\0"`, a `u16` format version, then the node tree
//! depth-first. A node is its kind (`u32` length + UTF-8), its row count (`u32`), each row's
//! step count (`u64`) and fill (`u8`), its buffer count (`u32`) and each buffer (`u8` present
//! flag, then six `u32` dims and the `f32` values), then its child count (`u32`) and children.

use burn::prelude::*;

use crate::error::StateError;
use crate::fill::TemporalFill;
use crate::state::State;

const MAGIC: &[u8; 8] = b"COSTATE\0";
const VERSION: u16 = 1;

impl<B: Backend> State<B> {
    /// Serialises the state (every row) to bytes. Reads buffers back from the device.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.size_bytes());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        self.write_node(&mut out);
        out
    }

    fn write_node(&self, out: &mut Vec<u8>) {
        write_u32(out, self.kind.len());
        out.extend_from_slice(self.kind.as_bytes());
        write_u32(out, self.rows());
        for &s in &self.steps {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.extend(self.fill.iter().map(|f| f.to_byte()));
        write_u32(out, self.buffers.len());
        for buffer in &self.buffers {
            match buffer {
                None => out.push(0),
                Some(t) => {
                    out.push(1);
                    t.dims().iter().for_each(|&d| write_u32(out, d));
                    let values = t.clone().into_data().convert::<f32>();
                    for v in values.iter::<f32>() {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        write_u32(out, self.children.len());
        for child in &self.children {
            child.write_node(out);
        }
    }

    /// Replaces this state's content with a snapshot taken from a state of the same module
    /// structure and row count. On error the state is left unchanged.
    ///
    /// # Errors
    /// [`StateError`] naming what does not match: magic, version, truncation, the module kind
    /// at a path of the tree, the row count, or a buffer shape.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let mut reader = Reader { bytes, pos: 0 };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(StateError::Magic);
        }
        let version = u16::from_le_bytes([reader.u8()?, reader.u8()?]);
        if version != VERSION {
            return Err(StateError::Version {
                found: version,
                supported: VERSION,
            });
        }
        let restored = self.read_node(&mut reader, "root")?;
        if reader.pos != bytes.len() {
            return Err(StateError::Truncated { offset: reader.pos });
        }
        *self = restored;
        Ok(())
    }

    fn read_node(&self, r: &mut Reader<'_>, path: &str) -> Result<State<B>, StateError> {
        let kind_len = r.u32()?;
        let kind = String::from_utf8(r.take(kind_len)?.to_vec())
            .map_err(|_| StateError::Invalid(format!("module kind at `{path}` is not UTF-8")))?;
        if kind != self.kind {
            return Err(StateError::Structure {
                path: path.into(),
                expected: self.kind.clone(),
                found: kind,
            });
        }
        let rows = r.u32()?;
        if rows != self.rows() {
            return Err(StateError::Rows {
                path: path.into(),
                expected: self.rows(),
                found: rows,
            });
        }
        let steps = (0..rows).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let fill = (0..rows)
            .map(|_| {
                let byte = r.u8()?;
                TemporalFill::from_byte(byte)
                    .ok_or_else(|| StateError::Invalid(format!("unknown fill {byte} at `{path}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n_buffers = r.u32()?;
        if n_buffers != self.buffers.len() {
            return Err(StateError::Structure {
                path: path.into(),
                expected: format!("{} with {} buffers", self.kind, self.buffers.len()),
                found: format!("{kind} with {n_buffers} buffers"),
            });
        }
        let mut buffers = Vec::with_capacity(n_buffers);
        for _ in 0..n_buffers {
            buffers.push(match r.u8()? {
                0 => None,
                1 => Some(self.read_buffer(r, path, rows)?),
                other => {
                    return Err(StateError::Invalid(format!(
                        "buffer flag {other} at `{path}`"
                    )))
                }
            });
        }
        let n_children = r.u32()?;
        if n_children != self.children.len() {
            return Err(StateError::Structure {
                path: path.into(),
                expected: format!("{} with {} children", self.kind, self.children.len()),
                found: format!("{kind} with {n_children} children"),
            });
        }
        let children = self
            .children
            .iter()
            .enumerate()
            .map(|(i, child)| child.read_node(r, &format!("{path}/{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(State {
            kind,
            buffers,
            steps,
            fill,
            children,
            device: self.device.clone(),
        })
    }

    fn read_buffer(
        &self,
        r: &mut Reader<'_>,
        path: &str,
        rows: usize,
    ) -> Result<Tensor<B, 6>, StateError> {
        let mut dims = [0usize; 6];
        for d in &mut dims {
            *d = r.u32()?;
        }
        if dims[0] != rows {
            return Err(StateError::Shape {
                path: path.into(),
                expected: vec![rows],
                found: dims.to_vec(),
            });
        }
        let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let count = count
            .filter(|&c| c <= (r.bytes.len() - r.pos) / 4)
            .ok_or(StateError::Truncated { offset: r.pos })?;
        let raw = r.take(count * 4)?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(values, dims),
            &self.device,
        ))
    }
}

fn write_u32(out: &mut Vec<u8>, value: usize) {
    let value = u32::try_from(value).expect("state sizes fit in u32: this is a bug");
    out.extend_from_slice(&value.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(StateError::Truncated { offset: self.pos })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, StateError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<u64, StateError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}
