//! The shapes a clip shows, and whether a point lies inside one.

use std::f64::consts::PI;

/// The outline of the moving object, in units of its radius, centred on the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    /// A disk (its rotation cannot be seen: never used for [`crate::Action::Rotating`]).
    Disk,
    /// A square with its corners on the unit circle.
    Square,
    /// An equilateral triangle with its corners on the unit circle.
    Triangle,
    /// A plus sign, arms of a third of the radius in width.
    Cross,
    /// A five-pointed star, inner radius 0.45.
    Star,
}

impl ShapeKind {
    /// Every shape.
    pub const ALL: [ShapeKind; 5] = [
        ShapeKind::Disk,
        ShapeKind::Square,
        ShapeKind::Triangle,
        ShapeKind::Cross,
        ShapeKind::Star,
    ];

    /// Whether turning the shape changes how it looks.
    pub fn shows_rotation(self) -> bool {
        self != ShapeKind::Disk
    }

    /// Whether the point `(x, y)`, in the shape's own frame (radius 1, unrotated), lies inside.
    pub fn contains(self, x: f64, y: f64) -> bool {
        match self {
            ShapeKind::Disk => x * x + y * y <= 1.0,
            ShapeKind::Square => {
                let half = std::f64::consts::FRAC_1_SQRT_2;
                x.abs() <= half && y.abs() <= half
            }
            ShapeKind::Triangle => inside_polygon(&regular_polygon(3, 1.0, 1.0), x, y),
            ShapeKind::Cross => {
                let (arm, half_width) = (0.95, 1.0 / 3.0);
                (x.abs() <= arm && y.abs() <= half_width)
                    || (y.abs() <= arm && x.abs() <= half_width)
            }
            ShapeKind::Star => inside_polygon(&regular_polygon(5, 1.0, 0.45), x, y),
        }
    }
}

/// A regular polygon of `points` outer corners at radius `outer`, with inner corners at radius
/// `inner` between them (a star) or, when `inner == outer`, `points` corners only.
fn regular_polygon(points: usize, outer: f64, inner: f64) -> Vec<(f64, f64)> {
    let step = PI / points as f64;
    let corner = |i: usize, r: f64| {
        let angle = -PI / 2.0 + step * i as f64;
        (r * angle.cos(), r * angle.sin())
    };
    if inner == outer {
        (0..points).map(|i| corner(2 * i, outer)).collect()
    } else {
        (0..2 * points)
            .map(|i| corner(i, if i % 2 == 0 { outer } else { inner }))
            .collect()
    }
}

/// The even-odd rule: a ray from the point crosses the outline an odd number of times.
fn inside_polygon(corners: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut previous = corners[corners.len() - 1];
    for &(cx, cy) in corners {
        let (px, py) = previous;
        if (cy > y) != (py > y) && x < (px - cx) * (y - cy) / (py - cy) + cx {
            inside = !inside;
        }
        previous = (cx, cy);
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_are_inside_and_far_points_outside() {
        for shape in ShapeKind::ALL {
            assert!(shape.contains(0.0, 0.0), "{shape:?}");
            assert!(!shape.contains(1.01, 1.01), "{shape:?}");
            assert!(!shape.contains(0.0, 1.05), "{shape:?}");
        }
    }

    #[test]
    fn outlines_are_the_intended_ones() {
        // The triangle points up (towards negative y): its apex is in, the bottom corners' level
        // is in only near the corners' x.
        assert!(ShapeKind::Triangle.contains(0.0, -0.95));
        assert!(!ShapeKind::Triangle.contains(0.5, -0.5));
        assert!(ShapeKind::Triangle.contains(0.7, 0.45));
        // The star has notches between its points.
        assert!(ShapeKind::Star.contains(0.0, -0.9));
        assert!(!ShapeKind::Star.contains(0.0, 0.9));
        // The cross has empty corners; the square does not.
        assert!(!ShapeKind::Cross.contains(0.6, 0.6));
        assert!(ShapeKind::Square.contains(0.6, 0.6));
        assert!(!ShapeKind::Disk.contains(0.75, 0.75));
    }
}
