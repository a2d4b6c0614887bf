//! BuildKit's progress stream as a readable build log.
//!
//! BuildKit reports the same step (a "vertex") many times as it is queued,
//! started, logs output and completes; the log shows each step once, when it
//! is first seen working or cached, its output under it, and one line when
//! it ends. The step that failed is remembered, with its last output lines,
//! for the error message and the annotation on its Dockerfile line.

use std::collections::{HashMap, VecDeque};

use bollard_buildkit_proto::google::protobuf::Timestamp;
use bollard_buildkit_proto::moby::buildkit::v1::{StatusResponse, Vertex};

/// The step that fetches `cache-from` images; it may fail harmlessly.
const CACHE_IMPORT: &str = "importing cache";

/// Output lines kept per step for the error of a failed step.
const TAIL_LINES: usize = 20;

/// A step that failed, as BuildKit named it (`[2/4] RUN make`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedStep {
    pub name: String,
    /// The step's last output lines.
    pub tail: Vec<String>,
}

#[derive(Debug, Default)]
struct Step {
    number: usize,
    announced: bool,
    finished: bool,
    tail: VecDeque<String>,
    /// Output not yet ended by a newline: BuildKit splits logs anywhere.
    partial: String,
}

#[derive(Debug, Default)]
pub struct Progress {
    steps: HashMap<String, Step>,
    failed: Option<FailedStep>,
    cached: usize,
    executed: usize,
}

impl Progress {
    /// The log lines one status update adds, in order.
    pub fn update(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut lines = Vec::new();
        for vertex in &status.vertexes {
            self.vertex(vertex, &mut lines);
        }
        for log in &status.logs {
            let text = String::from_utf8_lossy(&log.msg);
            let step = self.step(&log.vertex);
            step.partial.push_str(&text);
            let number = step.number;
            while let Some(end) = step.partial.find(['\n', '\r']) {
                let line: String = step.partial.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    continue;
                }
                step.tail.push_back(line.to_owned());
                if step.tail.len() > TAIL_LINES {
                    step.tail.pop_front();
                }
                lines.push(format!("#{number} {line}"));
            }
        }
        for warning in &status.warnings {
            let number = self.step(&warning.vertex).number;
            lines.push(format!(
                "#{number} WARNING: {}",
                String::from_utf8_lossy(&warning.short)
            ));
        }
        lines
    }

    /// The step that failed, if one did.
    pub fn failed(&self) -> Option<&FailedStep> {
        self.failed.as_ref()
    }

    /// Steps answered from the cache, and steps that ran.
    pub fn counts(&self) -> (usize, usize) {
        (self.cached, self.executed)
    }

    fn vertex(&mut self, vertex: &Vertex, lines: &mut Vec<String>) {
        let step = self.step(&vertex.digest);
        if step.finished {
            return;
        }
        let number = step.number;
        if !step.announced && (vertex.started.is_some() || vertex.cached) {
            step.announced = true;
            lines.push(format!("#{number} {}", vertex.name));
        }
        if vertex.cached {
            step.finished = true;
            if is_dockerfile_step(&vertex.name) {
                self.cached += 1;
            }
            lines.push(format!("#{number} CACHED"));
        } else if !vertex.error.is_empty() && vertex.name.starts_with(CACHE_IMPORT) {
            // No earlier image to take a cache from (a first build) is not a failure.
            step.finished = true;
            lines.push(format!("#{number} no cache imported: {}", vertex.error));
        } else if !vertex.error.is_empty() {
            step.finished = true;
            lines.push(format!("#{number} ERROR: {}", vertex.error));
            let tail = step.tail.iter().cloned().collect();
            // The first failure is the cause; later ones are steps cancelled by it.
            self.failed.get_or_insert(FailedStep {
                name: vertex.name.clone(),
                tail,
            });
        } else if let Some(completed) = &vertex.completed {
            step.finished = true;
            if is_dockerfile_step(&vertex.name) {
                self.executed += 1;
            }
            let seconds = vertex
                .started
                .as_ref()
                .map_or(0.0, |started| seconds_between(started, completed));
            lines.push(format!("#{number} DONE {seconds:.1}s"));
        }
    }

    fn step(&mut self, digest: &str) -> &mut Step {
        let next = self.steps.len() + 1;
        self.steps.entry(digest.to_owned()).or_insert_with(|| Step {
            number: next,
            ..Step::default()
        })
    }
}

/// A Dockerfile instruction (`[build 2/4] RUN make`), not BuildKit's own
/// bookkeeping (`[internal] load metadata …`, `copy /context /`).
fn is_dockerfile_step(name: &str) -> bool {
    name.starts_with('[') && !name.starts_with("[internal]")
}

fn seconds_between(from: &Timestamp, to: &Timestamp) -> f64 {
    let nanos = (to.seconds - from.seconds) as f64 * 1e9 + f64::from(to.nanos - from.nanos);
    (nanos / 1e9).max(0.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::moby::buildkit::v1::VertexLog;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn vertex(digest: &str, name: &str) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            ..Vertex::default()
        }
    }

    fn status(vertexes: Vec<Vertex>, logs: Vec<(&str, &str)>) -> StatusResponse {
        StatusResponse {
            vertexes,
            logs: logs
                .into_iter()
                .map(|(vertex, msg)| VertexLog {
                    vertex: vertex.into(),
                    msg: msg.as_bytes().to_vec(),
                    ..VertexLog::default()
                })
                .collect(),
            ..StatusResponse::default()
        }
    }

    #[test]
    fn each_step_once_with_its_output_and_how_it_ended() {
        let mut progress = Progress::default();
        let run = "[2/2] RUN make";
        let mut lines = progress.update(&status(vec![vertex("a", run)], vec![]));
        assert!(lines.is_empty(), "queued, not started: {lines:?}");
        let started = Vertex {
            started: at(10),
            ..vertex("a", run)
        };
        let cached = Vertex {
            cached: true,
            started: at(10),
            ..vertex("b", "[1/2] COPY . /src")
        };
        lines.extend(progress.update(&status(vec![started.clone(), cached], vec![("a", "comp")])));
        lines.extend(progress.update(&status(
            vec![started.clone()],
            vec![("a", "iling\nlinking\n")],
        )));
        let done = Vertex {
            completed: at(12),
            ..started
        };
        lines.extend(progress.update(&status(vec![done.clone()], vec![])));
        lines.extend(progress.update(&status(vec![done], vec![])));
        assert_eq!(
            lines,
            [
                "#1 [2/2] RUN make",
                "#2 [1/2] COPY . /src",
                "#2 CACHED",
                "#1 compiling",
                "#1 linking",
                "#1 DONE 2.0s",
            ]
        );
        assert_eq!(progress.counts(), (1, 1));
        assert_eq!(progress.failed(), None);
    }

    #[test]
    fn the_first_failed_step_is_kept_with_its_last_lines() {
        let mut progress = Progress::default();
        let failing = Vertex {
            started: at(1),
            ..vertex("a", "[3/4] RUN test")
        };
        let mut log: Vec<String> = (1..=30).map(|n| format!("line {n}\n")).collect();
        log.push("boom".into());
        let text = log.concat();
        progress.update(&status(
            vec![failing.clone()],
            vec![("a", &text), ("a", "\n")],
        ));
        let error = Vertex {
            error: "exit code: 2".into(),
            ..failing
        };
        let cancelled = Vertex {
            started: at(1),
            error: "context canceled".into(),
            ..vertex("b", "[2/4] RUN other")
        };
        let lines = progress.update(&status(vec![error, cancelled], vec![]));
        assert_eq!(lines[0], "#1 ERROR: exit code: 2");
        let failed = progress.failed().unwrap();
        assert_eq!(failed.name, "[3/4] RUN test");
        assert_eq!(failed.tail.len(), TAIL_LINES);
        assert_eq!(failed.tail.first().unwrap(), "line 12");
        assert_eq!(failed.tail.last().unwrap(), "boom");
    }

    #[test]
    fn a_cache_that_is_not_there_yet_is_not_a_failure() {
        let mut progress = Progress::default();
        let import = Vertex {
            started: at(1),
            error: "app:latest: not found".into(),
            ..vertex("c", "importing cache manifest from app:latest")
        };
        let lines = progress.update(&status(vec![import], vec![]));
        assert_eq!(
            lines,
            [
                "#1 importing cache manifest from app:latest",
                "#1 no cache imported: app:latest: not found"
            ]
        );
        assert_eq!(progress.failed(), None);
        assert_eq!(progress.counts(), (0, 0));
    }
}
