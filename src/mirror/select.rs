//! Which tags a copy takes: names, glob patterns, or all (pure).

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("`tags`: {pattern:?} is not a valid glob pattern ({reason}); use `*`, `?` and `[…]`")]
    BadPattern { pattern: String, reason: String },
    #[error(
        "`tags`: pattern {pattern:?} matches none of the {count} tags of {store}; check the pattern"
    )]
    NoMatch {
        pattern: String,
        count: usize,
        store: String,
    },
    #[error("{store} has no tags: there is nothing to copy; check the repository name")]
    Empty { store: String },
}

pub fn is_pattern(tag: &str) -> bool {
    tag.contains(['*', '?', '['])
}

/// `wanted` in order, patterns expanded against `available` (given when
/// any pattern is, or when `wanted` is empty: then all of it), duplicates
/// dropped.
pub fn select(
    wanted: &[String],
    available: Option<&[String]>,
    store: &str,
) -> Result<Vec<String>, SelectError> {
    let available = available.unwrap_or_default();
    let mut chosen: Vec<String> = Vec::new();
    let mut push = |tag: &str| {
        if !chosen.iter().any(|c| c == tag) {
            chosen.push(tag.to_owned());
        }
    };
    if wanted.is_empty() {
        available.iter().for_each(|t| push(t));
    }
    for want in wanted {
        if !is_pattern(want) {
            push(want);
            continue;
        }
        let pattern = glob::Pattern::new(want).map_err(|e| SelectError::BadPattern {
            pattern: want.clone(),
            reason: e.msg.to_owned(),
        })?;
        let mut matched = false;
        for tag in available.iter().filter(|t| pattern.matches(t)) {
            matched = true;
            push(tag);
        }
        if !matched {
            return Err(SelectError::NoMatch {
                pattern: want.clone(),
                count: available.len(),
                store: store.to_owned(),
            });
        }
    }
    if chosen.is_empty() {
        return Err(SelectError::Empty {
            store: store.to_owned(),
        });
    }
    Ok(chosen)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_patterns_and_all() {
        let available = strings(&["1.0", "1.1", "2.0", "latest"]);
        assert_eq!(
            select(&[], Some(&available), "r").unwrap(),
            available,
            "nothing named: all"
        );
        assert_eq!(
            select(&strings(&["latest", "1.*", "1.0"]), Some(&available), "r").unwrap(),
            ["latest", "1.0", "1.1"]
        );
        assert_eq!(
            select(&strings(&["9.9"]), None, "r").unwrap(),
            ["9.9"],
            "names are checked when copied, not here"
        );
    }

    #[test]
    fn what_cannot_be_selected_is_named() {
        let available = strings(&["1.0"]);
        let err = select(&strings(&["3.*"]), Some(&available), "reg/app").unwrap_err();
        assert!(err.to_string().contains("\"3.*\"") && err.to_string().contains("reg/app"));
        let err = select(&strings(&["[x"]), Some(&available), "r").unwrap_err();
        assert!(err.to_string().contains("not a valid glob"), "{err}");
        let err = select(&[], Some(&[]), "reg/empty").unwrap_err();
        assert!(err.to_string().contains("reg/empty has no tags"), "{err}");
    }
}
