//! The limits `monitor` is given, as the workflow spells them (pure):
//! percentages (`10%`), sizes (`50GiB`) and durations that are not zero.

/// `10%`, `7.5%` or `0.1` → a fraction (0.1, 0.075, 0.1).
pub fn percent(raw: &str) -> Result<f64, String> {
    let text = raw.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0),
        None => (text, 1.0),
    };
    match number.parse::<f64>() {
        // `95` without `%` is almost surely meant as 95 %, not 9500 %.
        Ok(n) if scale == 1.0 && n > 1.0 => Err(format!(
            "{raw:?} would be {}%; write `{text}%`, or a fraction such as `0.95`",
            n * 100.0
        )),
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n / scale),
        _ => Err(format!(
            "{raw:?} is not a percentage: give a number and `%`, such as `10%` or `95%`"
        )),
    }
}

/// A duration as `wait-timeout` takes it (`30s`, `2m`), but never zero:
/// a zero bound would fail every request, or call every pull slow.
pub fn duration(raw: &str) -> Result<std::time::Duration, String> {
    let duration = crate::bases::policy::duration(raw)?;
    if duration.is_zero() {
        return Err(format!("{raw:?} is no time at all: give at least `1s`"));
    }
    Ok(duration)
}

/// `50GiB`, `500MB`, `1.5TiB` or a plain byte count → bytes. Binary (`KiB`,
/// `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`, `GB`, `TB`) units.
pub fn size(raw: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{raw:?} is not a size: give a number and a unit, such as `50GiB`, `500MiB` or `2TB`"
        )
    };
    let text = raw.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent("10%"), Ok(0.1));
        assert_eq!(percent(" 7.5 % "), Ok(0.075));
        assert_eq!(percent("0.95"), Ok(0.95));
        for bad in ["ten", "-5%", "%", ""] {
            let err = percent(bad).unwrap_err();
            assert!(err.contains("`10%`"), "{bad}: {err}");
        }
        assert_eq!(
            percent("95"),
            Err("\"95\" would be 9500%; write `95%`, or a fraction such as `0.95`".to_owned())
        );
        assert_eq!(percent("1"), Ok(1.0));
    }

    #[test]
    fn durations_are_never_zero() {
        assert_eq!(duration("1m30s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(
            duration("0s"),
            Err("\"0s\" is no time at all: give at least `1s`".into())
        );
        assert!(duration("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn sizes() {
        assert_eq!(size("50GiB"), Ok(50 << 30));
        assert_eq!(size("1.5 MiB"), Ok(3 << 19));
        assert_eq!(size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(size("4096"), Ok(4096));
        for bad in ["GiB", "50 parsecs", "0", "-1GiB"] {
            let err = size(bad).unwrap_err();
            assert!(err.contains("`50GiB`"), "{bad}: {err}");
        }
    }
}
