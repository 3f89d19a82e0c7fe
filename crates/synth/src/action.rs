//! The action classes: what the shape in a clip does.

/// What the shape in a clip does, from its first frame to its last. The discriminant is the
/// class index of the trained model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Translates leftwards, wrapping around the frame's edge.
    MovingLeft = 0,
    /// Translates rightwards, wrapping around.
    MovingRight = 1,
    /// Translates upwards, wrapping around.
    MovingUp = 2,
    /// Translates downwards, wrapping around.
    MovingDown = 3,
    /// Grows, and starts again small when it reaches its largest size.
    Growing = 4,
    /// Shrinks, and starts again large when it reaches its smallest size.
    Shrinking = 5,
    /// Turns about its centre, clockwise or anticlockwise.
    Rotating = 6,
    /// Stays where it is.
    Still = 7,
}

impl Action {
    /// Every class, in class-index order.
    pub const ALL: [Action; 8] = [
        Action::MovingLeft,
        Action::MovingRight,
        Action::MovingUp,
        Action::MovingDown,
        Action::Growing,
        Action::Shrinking,
        Action::Rotating,
        Action::Still,
    ];

    /// The class index (position in [`Action::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class of index `index`, if there is one.
    pub fn from_index(index: usize) -> Option<Action> {
        Action::ALL.get(index).copied()
    }

    /// The label the model reports: `moving left`, `growing`, ….
    pub fn label(self) -> &'static str {
        match self {
            Action::MovingLeft => "moving left",
            Action::MovingRight => "moving right",
            Action::MovingUp => "moving up",
            Action::MovingDown => "moving down",
            Action::Growing => "growing",
            Action::Shrinking => "shrinking",
            Action::Rotating => "rotating",
            Action::Still => "still",
        }
    }

    /// The class whose label or short name (`left`, `right`, `up`, `down`, `grow`, `shrink`,
    /// `rotate`, `still`) is `name`, ignoring case, spaces, `-` and `_`.
    pub fn from_name(name: &str) -> Option<Action> {
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .collect::<String>()
            .to_ascii_lowercase();
        Action::ALL.into_iter().find(|a| {
            let label: String = a.label().chars().filter(|c| *c != ' ').collect();
            key == label || key == a.short_name()
        })
    }

    fn short_name(self) -> &'static str {
        match self {
            Action::MovingLeft => "left",
            Action::MovingRight => "right",
            Action::MovingUp => "up",
            Action::MovingDown => "down",
            Action::Growing => "grow",
            Action::Shrinking => "shrink",
            Action::Rotating => "rotate",
            Action::Still => "still",
        }
    }

    /// The labels file of the trained model: one label per line, in class-index order.
    pub fn labels_file() -> String {
        Action::ALL
            .iter()
            .map(|a| format!("{}\n", a.label()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_names_round_trip() {
        for (i, action) in Action::ALL.into_iter().enumerate() {
            assert_eq!(action.index(), i);
            assert_eq!(Action::from_index(i), Some(action));
            assert_eq!(Action::from_name(action.label()), Some(action));
            assert_eq!(Action::from_name(action.short_name()), Some(action));
        }
        assert_eq!(Action::from_name("Moving_Left"), Some(Action::MovingLeft));
        assert_eq!(Action::from_name("jumping"), None);
        assert_eq!(Action::from_index(8), None);
        assert_eq!(Action::labels_file().lines().count(), 8);
    }
}
