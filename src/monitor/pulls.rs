//! Unusual pulls (pure): the rate an image was pulled at since the last
//! run, against the median of the rates of the runs before it.
//!
//! The rule: with at least [`MIN_HISTORY`] earlier rates, a rate more than
//! [`SPIKE`]× the median of the last [`WINDOW`] is a spike (if it is at least
//! [`MIN_RATE`] a day), and one under [`DROP`]× that median is a drop (if the
//! median is at least [`MIN_RATE`] a day). Fewer earlier rates: silent.

/// Earlier rates needed before the check speaks.
pub const MIN_HISTORY: usize = 3;
/// Rates a report keeps per image, and the median is taken over.
pub const WINDOW: usize = 14;
pub const SPIKE: f64 = 5.0;
pub const DROP: f64 = 0.2;
/// Pulls a day under which neither a spike nor a drop is news: from 1 to 6
/// a day is noise, not a pattern.
pub const MIN_RATE: f64 = 10.0;

/// What the registry told about an image's pulls.
#[derive(Debug, Clone, PartialEq)]
pub enum Pulls {
    /// The registry's running total, and the previous report's total with
    /// the rates before it, if that report had this image.
    Counted {
        count: u64,
        before: Option<(u64, Vec<f64>)>,
    },
    Failed(String),
    /// The registry keeps no counts (the OCI distribution API has none).
    NotTold,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unusual {
    Spike { rate: f64, usual: f64, runs: usize },
    Drop { rate: f64, usual: f64, runs: usize },
}

/// Pulls a day from one total to the next over `days`; less than a day
/// counts as one, as for storage growth. `None` when the total went down
/// (the repository was deleted and pushed again): that interval says
/// nothing.
pub fn rate(before: u64, now: u64, days: f64) -> Option<f64> {
    let pulled = now.checked_sub(before)?;
    Some(pulled as f64 / days.max(1.0))
}

/// The earlier rates, then `rate`; the newest [`WINDOW`]. Values from a
/// previous report that can't be rates are dropped.
pub fn carry(earlier: &[f64], rate: Option<f64>) -> Vec<f64> {
    let mut rates: Vec<f64> = earlier
        .iter()
        .copied()
        .chain(rate)
        .filter(|r| r.is_finite() && *r >= 0.0)
        .collect();
    let excess = rates.len().saturating_sub(WINDOW);
    rates.drain(..excess);
    rates
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// Whether `rate` is far outside the usual range of `earlier`.
pub fn judge(earlier: &[f64], rate: f64) -> Option<Unusual> {
    let earlier = carry(earlier, None);
    if earlier.len() < MIN_HISTORY {
        return None;
    }
    let usual = median(&earlier)?;
    let runs = earlier.len();
    if rate > SPIKE * usual && rate >= MIN_RATE {
        Some(Unusual::Spike { rate, usual, runs })
    } else if rate < DROP * usual && usual >= MIN_RATE {
        Some(Unusual::Drop { rate, usual, runs })
    } else {
        None
    }
}

impl Unusual {
    pub fn message(self, repository: &str) -> String {
        let (rate, usual, runs, rule) = match self {
            Unusual::Spike { rate, usual, runs } => (
                rate,
                usual,
                runs,
                format!(
                    "more than {SPIKE}× is unusual: look for a runaway job or a leaked credential pulling it"
                ),
            ),
            Unusual::Drop { rate, usual, runs } => (
                rate,
                usual,
                runs,
                format!("less than {DROP}× is unusual: check that its users can still pull it"),
            ),
        };
        let times = if usual > 0.0 {
            format!("{}× ", ratio(rate / usual))
        } else {
            String::new()
        };
        format!(
            "`{repository}` was pulled {} times a day since the last run, {times}its usual {} (the median of the last {runs} runs); {rule}",
            figure(rate),
            figure(usual)
        )
    }
}

/// Up to one decimal, without a trailing `.0`.
pub fn figure(value: f64) -> String {
    trimmed(format!("{value:.1}"))
}

/// Up to two decimals: a drop is a fraction.
fn ratio(value: f64) -> String {
    trimmed(format!("{value:.2}"))
}

fn trimmed(text: String) -> String {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_day_and_a_reset_says_nothing() {
        let cases = [
            ((100, 700, 2.0), Some(300.0)),
            ((100, 700, 0.01), Some(600.0)),
            ((100, 100, 1.0), Some(0.0)),
            ((700, 100, 1.0), None),
        ];
        for ((before, now, days), expected) in cases {
            assert_eq!(
                rate(before, now, days),
                expected,
                "{before} → {now} in {days}"
            );
        }
    }

    #[test]
    fn medians() {
        let cases: [(&[f64], Option<f64>); 4] = [
            (&[], None),
            (&[3.0], Some(3.0)),
            (&[9.0, 1.0, 5.0], Some(5.0)),
            (&[1.0, 10.0, 2.0, 4.0], Some(3.0)),
        ];
        for (values, expected) in cases {
            assert_eq!(median(values), expected, "{values:?}");
        }
    }

    #[test]
    fn the_rule() {
        let quiet = [100.0, 90.0, 110.0];
        let cases: [(&[f64], f64, Option<Unusual>); 9] = [
            (&quiet, 500.0, None),
            (
                &quiet,
                501.0,
                Some(Unusual::Spike {
                    rate: 501.0,
                    usual: 100.0,
                    runs: 3,
                }),
            ),
            (&quiet, 20.0, None),
            (
                &quiet,
                19.0,
                Some(Unusual::Drop {
                    rate: 19.0,
                    usual: 100.0,
                    runs: 3,
                }),
            ),
            // Too little history: silent, whatever the rate.
            (&[100.0, 100.0], 10_000.0, None),
            // Under MIN_RATE a day, neither is news.
            (&[1.0, 1.0, 1.0], 9.0, None),
            (&[9.0, 9.0, 9.0], 0.0, None),
            (
                &[0.0, 0.0, 0.0],
                10.0,
                Some(Unusual::Spike {
                    rate: 10.0,
                    usual: 0.0,
                    runs: 3,
                }),
            ),
            // Bad values from a previous report don't count as history.
            (&[100.0, f64::NAN, -5.0], 1000.0, None),
        ];
        for (earlier, now, expected) in cases {
            assert_eq!(judge(earlier, now), expected, "{earlier:?} then {now}");
        }
    }

    #[test]
    fn history_is_bounded_to_the_window() {
        let long: Vec<f64> = (0..20).map(f64::from).collect();
        let kept = carry(&long, Some(99.0));
        assert_eq!(kept.len(), WINDOW);
        assert_eq!((kept[0], kept[WINDOW - 1]), (7.0, 99.0));
        assert_eq!(carry(&[1.0], None), [1.0]);
    }

    #[test]
    fn messages_give_the_figures() {
        let spike = Unusual::Spike {
            rate: 600.0,
            usual: 100.0,
            runs: 4,
        };
        assert_eq!(
            spike.message("acme/app"),
            "`acme/app` was pulled 600 times a day since the last run, 6× its usual 100 (the median of the last 4 runs); more than 5× is unusual: look for a runaway job or a leaked credential pulling it"
        );
        let drop = Unusual::Drop {
            rate: 2.0,
            usual: 100.0,
            runs: 3,
        };
        assert_eq!(
            drop.message("acme/app"),
            "`acme/app` was pulled 2 times a day since the last run, 0.02× its usual 100 (the median of the last 3 runs); less than 0.2× is unusual: check that its users can still pull it"
        );
    }
}
