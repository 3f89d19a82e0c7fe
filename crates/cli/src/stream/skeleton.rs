//! Reads skeleton sequences, the joints a pose tracker emits per frame, from JSON or CSV.
//!
//! - **JSON**: an array of frames; a frame is an array of persons; a person is an array of
//!   joints; a joint is `[x, y, confidence]` (or `[x, y]`, confidence 1).
//!   `[[[[0.1, 0.2, 0.9], [0.3, 0.4, 0.8]]], …]` is one person with two joints per frame.
//! - **CSV**: a header naming the columns `frame,person,joint,x,y` and optionally
//!   `confidence`, in any order, then one row per joint. Indices start at 0.
//!
//! Every frame gets as many persons as the most crowded frame; absent persons and joints are
//! zeros (confidence 0), as ST-GCN's data pipelines pad them.

use costream_proto::v1::Skeleton;

/// Persons per frame at most.
const MAX_PERSONS: usize = 64;
/// Joints per person at most.
const MAX_JOINTS: usize = 1024;
/// Frames in a CSV file at most (a corrupt index must not allocate without bound).
const MAX_FRAMES: usize = 10_000_000;

/// One frame: persons × joints × (x, y, confidence).
#[derive(Debug, Clone, PartialEq)]
struct Joints {
    persons: Vec<Vec<[f32; 3]>>,
}

/// The frames of a JSON skeleton sequence.
///
/// # Errors
/// A message naming the frame, person or joint that is malformed.
pub(crate) fn from_json(text: &str) -> Result<Vec<Skeleton>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the skeleton JSON is malformed: {e}"))?;
    let frames = value
        .as_array()
        .ok_or("the skeleton JSON must be an array of frames")?;
    let mut parsed = Vec::with_capacity(frames.len());
    for (f, frame) in frames.iter().enumerate() {
        let persons = frame
            .as_array()
            .ok_or_else(|| format!("frame {f} is not an array of persons"))?;
        let mut joints = Joints {
            persons: Vec::new(),
        };
        for (p, person) in persons.iter().enumerate() {
            let list = person
                .as_array()
                .ok_or_else(|| format!("frame {f} person {p} is not an array of joints"))?;
            let mut person_joints = Vec::with_capacity(list.len());
            for (j, joint) in list.iter().enumerate() {
                let at = || format!("frame {f} person {p} joint {j}");
                let values = joint
                    .as_array()
                    .filter(|v| v.len() == 2 || v.len() == 3)
                    .ok_or_else(|| format!("{} is not [x, y] or [x, y, confidence]", at()))?;
                let mut xyc = [0.0, 0.0, 1.0];
                for (slot, v) in xyc.iter_mut().zip(values) {
                    *slot = v
                        .as_f64()
                        .map(|v| v as f32)
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("{} has a value that is not a number", at()))?;
                }
                person_joints.push(xyc);
            }
            joints.persons.push(person_joints);
        }
        parsed.push(joints);
    }
    pack(parsed)
}

/// The frames of a CSV skeleton sequence.
///
/// # Errors
/// A message naming the line that is malformed, or a joint given twice.
pub(crate) fn from_csv(text: &str) -> Result<Vec<Skeleton>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("the skeleton CSV is empty")?;
    let names: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| names.iter().position(|n| n == name);
    let required = ["frame", "person", "joint", "x", "y"].map(|name| {
        column(name).ok_or_else(|| {
            format!("the skeleton CSV header has no `{name}` column (it needs frame,person,joint,x,y and optionally confidence)")
        })
    });
    let [frame_col, person_col, joint_col, x_col, y_col] = {
        let mut cols = [0; 5];
        for (slot, col) in cols.iter_mut().zip(required) {
            *slot = col?;
        }
        cols
    };
    let confidence_col = column("confidence");
    let mut frames: Vec<Joints> = Vec::new();
    for (number, line) in lines {
        let line_no = number + 1;
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |col: usize| {
            cells.get(col).copied().ok_or_else(|| {
                format!(
                    "line {line_no} has {} cells; the header names {}",
                    cells.len(),
                    names.len()
                )
            })
        };
        let index = |col: usize, limit: usize| -> Result<usize, String> {
            let text = cell(col)?;
            text.parse::<usize>()
                .ok()
                .filter(|&i| i < limit)
                .ok_or_else(|| {
                    format!(
                        "line {line_no}: {} `{text}` is not an index below {limit}",
                        names[col]
                    )
                })
        };
        let value = |col: usize| -> Result<f32, String> {
            let text = cell(col)?;
            text.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("line {line_no}: {} `{text}` is not a number", names[col]))
        };
        let (f, p, j) = (
            index(frame_col, MAX_FRAMES)?,
            index(person_col, MAX_PERSONS)?,
            index(joint_col, MAX_JOINTS)?,
        );
        let confidence = confidence_col.map_or(Ok(1.0), value)?;
        let xyc = [value(x_col)?, value(y_col)?, confidence];
        if frames.len() <= f {
            frames.resize(
                f + 1,
                Joints {
                    persons: Vec::new(),
                },
            );
        }
        let persons = &mut frames[f].persons;
        if persons.len() <= p {
            persons.resize(p + 1, Vec::new());
        }
        let joints = &mut persons[p];
        if joints.len() <= j {
            joints.resize(j + 1, [f32::NAN; 3]);
        }
        if !joints[j][0].is_nan() {
            return Err(format!(
                "line {line_no}: frame {f} person {p} joint {j} is given twice"
            ));
        }
        joints[j] = xyc;
    }
    for frame in &mut frames {
        for joint in frame.persons.iter_mut().flatten() {
            if joint[0].is_nan() {
                *joint = [0.0; 3];
            }
        }
    }
    pack(frames)
}

/// Pads every frame to the same persons × joints and flattens it.
fn pack(frames: Vec<Joints>) -> Result<Vec<Skeleton>, String> {
    if frames.is_empty() {
        return Err("the skeleton sequence has no frames".into());
    }
    let persons = frames.iter().map(|f| f.persons.len()).max().unwrap_or(0);
    let joints = frames
        .iter()
        .flat_map(|f| &f.persons)
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    if persons == 0 || joints == 0 {
        return Err("the skeleton sequence has no joints".into());
    }
    if persons > MAX_PERSONS || joints > MAX_JOINTS {
        return Err(format!(
            "the skeleton sequence has {persons} persons of {joints} joints; at most \
             {MAX_PERSONS} of {MAX_JOINTS} are accepted"
        ));
    }
    Ok(frames
        .into_iter()
        .map(|frame| {
            let mut data = vec![0.0; persons * joints * 3];
            for (p, person) in frame.persons.iter().enumerate() {
                for (j, joint) in person.iter().enumerate() {
                    data[(p * joints + j) * 3..][..3].copy_from_slice(joint);
                }
            }
            Skeleton {
                persons: persons as u32,
                joints: joints as u32,
                data,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_frames_are_padded_to_the_most_persons() {
        let frames = from_json(
            "[[[[1, 2, 0.5], [3, 4]]], [[[5, 6, 1], [7, 8, 1]], [[9, 10, 1], [11, 12, 0]]]]",
        )
        .unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].persons, frames[0].joints), (2, 2));
        assert_eq!(
            frames[0].data,
            vec![1.0, 2.0, 0.5, 3.0, 4.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(frames[1].data[6..9], [9.0, 10.0, 1.0]);
    }

    #[test]
    fn csv_rows_in_any_order_with_absent_joints_as_zeros() {
        let csv = "x,y,frame,person,joint,confidence\n\
                   0.5,0.25,1,0,1,0.9\n\
                   1,2,0,0,0,1\n\
                   3,4,0,0,1,0.5\n";
        let frames = from_csv(csv).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].data, vec![1.0, 2.0, 1.0, 3.0, 4.0, 0.5]);
        assert_eq!(frames[1].data, vec![0.0, 0.0, 0.0, 0.5, 0.25, 0.9]);
    }

    #[test]
    fn json_and_csv_name_what_is_wrong() {
        let json = |text: &str| from_json(text).unwrap_err();
        assert!(json("{").contains("malformed"));
        assert!(json("{}").contains("array of frames"));
        assert!(json("[[[[1]]]]").contains("frame 0 person 0 joint 0 is not [x, y]"));
        assert!(json("[[[[1, \"a\", 1]]]]").contains("not a number"));
        assert!(json("[]").contains("no frames"));
        let csv = |text: &str| from_csv(text).unwrap_err();
        assert!(csv("frame,person,x,y\n").contains("no `joint` column"));
        assert!(csv("frame,person,joint,x,y\n0,0,0,1\n").contains("line 2 has 4 cells"));
        assert!(csv("frame,person,joint,x,y\n0,-1,0,1,2\n").contains("person `-1`"));
        assert!(csv("frame,person,joint,x,y\n0,0,0,1,nan\n").contains("y `nan` is not a number"));
        assert!(csv("frame,person,joint,x,y\n0,0,0,1,2\n0,0,0,1,2\n").contains("given twice"));
    }
}
