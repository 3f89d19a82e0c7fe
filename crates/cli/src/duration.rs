//! Durations on the command line: `0`, `250ms`, `30s`, `5m`, `2h`, `7d`.

use std::time::Duration;

/// Parses a number with a unit (`ms`, `s`, `m`, `h`, `d`); a bare `0` is zero.
///
/// # Errors
/// A message naming the value and the accepted forms.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write e.g. 250ms, 30s, 5m, 2h, 7d or 0");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_the_rest() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "5", "s", "5 s", "-1s", "3w"] {
            assert!(parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
