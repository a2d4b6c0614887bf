//! How long and how often to wait for a base, and the inputs that say so
//! (pure).

use std::time::Duration;

/// Looks come a quarter of the time waited so far apart, from one a
/// second up to one per `MAX_PAUSE`: a base that lands is picked up within
/// a quarter of the wait (a dependent of a 3-minute build starts at most
/// 45 s late, at most 15 s on longer ones; doubling pauses lost up to the
/// whole wait again to an unlucky look), and a half-hour wait costs some
/// 130 manifest requests, not a stream of them.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(15);
/// The jobs API is asked at most this often: its rate limit is shared by
/// every job of the repository.
pub const JOBS_EVERY: Duration = Duration::from_secs(60);
/// One progress line per this, not one per look.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// The pause after a look `elapsed` into the wait, never past the deadline.
pub fn pause(elapsed: Duration, timeout: Duration) -> Duration {
    (elapsed / 4)
        .clamp(FIRST_PAUSE, MAX_PAUSE)
        .min(timeout.saturating_sub(elapsed))
}

/// Whether something done every `every`, last at `last`, is due at `now`.
pub fn due(last: Option<Duration>, now: Duration, every: Duration) -> bool {
    last.is_none_or(|last| now.saturating_sub(last) >= every)
}

/// `wait-timeout`: a number with a unit, or several (`30m`, `90s`, `1h`,
/// `1h30m`).
pub fn duration(raw: &str) -> Result<Duration, String> {
    crate::units::parse_duration(raw).ok_or_else(|| {
        format!(
            "{raw:?} is not a duration: give a number and a unit, such as `30m`, `90s`, `1h` or `1h30m`"
        )
    })
}

/// `depends-on`: a matrix entry's list as `toJSON(matrix.depends-on)` gives
/// it (a JSON array, possibly over several lines), or one name per line.
pub fn depends_on(values: &[String]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for value in values {
        let text = value.trim();
        if text.starts_with('[') {
            let list: Vec<String> = serde_json::from_str(text).map_err(|e| {
                format!("`depends-on`: {text:?} is not a JSON array of image names ({e}); pass `${{{{ toJSON(matrix.depends-on) }}}}` or one name per line")
            })?;
            names.extend(list.into_iter().map(|n| n.trim().to_owned()));
        } else {
            names.extend(crate::actions::inputs::split_list(text));
        }
    }
    if let Some(bad) = names
        .iter()
        .find(|n| n.is_empty() || n.contains(char::is_whitespace))
    {
        return Err(format!(
            "`depends-on`: {bad:?} is not an image name; give the names of the matrix entry's `depends-on`, like `base`"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pauses_grow_with_the_wait_up_to_a_cap_and_stop_at_the_deadline() {
        let pauses: Vec<u64> = [0, 2, 4, 8, 20, 40, 60, 600]
            .map(|elapsed| pause(secs(elapsed), secs(3600)).as_secs())
            .to_vec();
        assert_eq!(pauses, [1, 1, 1, 2, 5, 10, 15, 15]);
        assert_eq!(pause(secs(1790), secs(1800)), secs(10));
        assert_eq!(pause(secs(1900), secs(1800)), secs(0));
        // A half-hour wait: few requests, not a stream.
        let (mut elapsed, mut looks) = (Duration::ZERO, 0);
        while elapsed < secs(1800) {
            elapsed += pause(elapsed, secs(1800));
            looks += 1;
        }
        assert!((120..=140).contains(&looks), "{looks} looks");
    }

    #[test]
    fn a_periodic_thing_is_due_first_and_then_once_per_period() {
        assert!(due(None, secs(0), JOBS_EVERY));
        assert!(!due(Some(secs(0)), secs(59), JOBS_EVERY));
        assert!(due(Some(secs(0)), secs(60), JOBS_EVERY));
        assert!(due(Some(secs(61)), secs(125), PROGRESS_EVERY));
    }

    #[test]
    fn durations_take_units_and_refuse_the_rest() {
        assert_eq!(duration("30m"), Ok(secs(1800)));
        assert_eq!(duration(" 90s "), Ok(secs(90)));
        assert_eq!(duration("1h30m"), Ok(secs(5400)));
        assert_eq!(duration("0s"), Ok(secs(0)));
        for bad in ["", "30", "m", "1mo", "-5m", "99999999999999999999h"] {
            let err = duration(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("{bad:?} is not a duration")),
                "{err}"
            );
            assert!(err.contains("`30m`"), "{err}");
        }
    }

    #[test]
    fn depends_on_takes_the_matrix_json_or_lines() {
        let list =
            |values: &[&str]| depends_on(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>());
        assert_eq!(
            list(&["[\n  \"base\",\n  \"team/runtime\"\n]"]).unwrap(),
            ["base", "team/runtime"]
        );
        assert_eq!(
            list(&["base\nruntime\nbase\n"]).unwrap(),
            ["base", "runtime"]
        );
        assert_eq!(list(&["[]"]).unwrap(), Vec::<String>::new());
        assert_eq!(list(&[""]).unwrap(), Vec::<String>::new());
        let err = list(&["[base]"]).unwrap_err();
        assert!(
            err.starts_with("`depends-on`: \"[base]\" is not a JSON array of image names"),
            "{err}"
        );
        assert!(err.contains("${{ toJSON(matrix.depends-on) }}"), "{err}");
        let err = list(&["[\"a b\"]"]).unwrap_err();
        assert!(
            err.starts_with("`depends-on`: \"a b\" is not an image name"),
            "{err}"
        );
    }
}
