//! Times as registries, Docker Hub and ignore files write them (through jiff).

/// RFC 3339 with any offset and fraction, or a bare `YYYY-MM-DD` (midnight
/// UTC), as seconds since the Unix epoch.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    // A bare date, in its extended form only (`2024-08-20`).
    if text.len() != 10 {
        return None;
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// Now, in seconds since the Unix epoch (0 on a clock set before it).
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second().max(0)
}

/// Seconds since the epoch as RFC 3339 in UTC, to the second.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map_or_else(|_| "1970-01-01T00:00:00Z".to_owned(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-08-20T00:00:00Z
    const AUG_20: i64 = 1_724_112_000;

    #[test]
    fn parses_what_registries_and_ignore_files_write() {
        let cases = [
            ("1970-01-01", Some(0)),
            ("2024-08-20", Some(AUG_20)),
            ("2000-03-01", Some(951_868_800)),
            ("2024-02-29", Some(1_709_164_800)),
            ("2024-08-20T00:00:00Z", Some(AUG_20)),
            ("2024-08-20T12:30:15.25Z", Some(AUG_20 + 45_015)),
            ("2024-08-20t02:00:00+02:00", Some(AUG_20)),
            ("2024-08-19 19:00:00-05:00", Some(AUG_20)),
            // Docker Hub's microseconds and image configs' nanoseconds.
            ("2023-06-13T04:58:31.821511Z", Some(1_686_632_311)),
            ("2026-03-16T09:11:16.626819836Z", Some(1_773_652_276)),
            ("2023-02-29", None),
            ("2023-02-29T12:00:00Z", None),
            ("2024-13-01", None),
            ("2024-8-20", None),
            ("20240820", None),
            ("2024-08-20T25:00:00Z", None),
            ("2024-08-20T00:00:00", None),
            ("tomorrow", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(unix_seconds(text), want, "{text}");
        }
    }

    #[test]
    fn formats_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_824_000), "2026-11-28T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(unix_seconds(&rfc3339(1_686_632_311)), Some(1_686_632_311));
    }
}
