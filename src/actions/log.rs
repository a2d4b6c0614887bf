//! The plain lines of the log: `tracing` events on stderr, each one line
//! escaped by [`log_line`], so no event can carry a workflow command,
//! whatever file name, commit message or registry answer it quotes.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::workflow::log_line;

/// Formats an event with the wrapped formatter, then writes it as one
/// escaped line.
pub struct EscapedEvents<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for EscapedEvents<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        writeln!(
            writer,
            "{}",
            log_line(text.strip_suffix('\n').unwrap_or(&text))
        )
    }
}

/// The events as the binary writes them: no time, no target, no colours.
pub fn format()
-> EscapedEvents<tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, ()>>
{
    EscapedEvents(
        tracing_subscriber::fmt::format()
            .without_time()
            .with_target(false)
            .with_ansi(false),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::actions::capture::Capture;

    fn logged(emit: impl FnOnce()) -> String {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(format())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        capture.text()
    }

    #[test]
    fn each_event_is_one_escaped_line() {
        let name = "ops/docker/app/x\n::stop-commands::pwn";
        let text = logged(|| {
            tracing::info!(file = %name, "selected: changed `{name}`");
            tracing::warn!("50% of ##[add-mask]x\r\n##[error]y");
        });
        assert_eq!(
            text,
            " INFO selected: changed `ops/docker/app/x%0A::stop-commands::pwn` file=ops/docker/app/x%0A::stop-commands::pwn\n \
             WARN 50%25 of ##%5Badd-mask]x%0D%0A##%5Berror]y\n"
        );
    }
}
