//! The build's answer: JSON objects, one per line (`\r\n` from moby),
//! arriving in chunks that split lines anywhere.

use bollard::models::BuildInfo;

use super::BuildKitError;

/// A line longer than this is not a build message: refuse it rather than
/// buffer without end.
const MAX_LINE: usize = 16 << 20;
/// Characters of an undecodable line kept for the error message.
const SHOWN: usize = 200;

#[derive(Default)]
pub(super) struct JsonLines {
    partial: Vec<u8>,
}

impl JsonLines {
    /// The messages completed by `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Result<BuildInfo, BuildKitError>> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial);
            out.extend(decode(&line));
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
            out.push(Err(BuildKitError::Decode {
                line: format!("(a line of more than {MAX_LINE} bytes)"),
                reason: "too long".into(),
            }));
        }
        out
    }

    /// The last message, when the answer did not end with a newline.
    pub fn finish(self) -> Option<Result<BuildInfo, BuildKitError>> {
        decode(&self.partial)
    }
}

fn decode(line: &[u8]) -> Option<Result<BuildInfo, BuildKitError>> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(line).map_err(|e| BuildKitError::Decode {
            line: String::from_utf8_lossy(line).chars().take(SHOWN).collect(),
            reason: e.to_string(),
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bollard::models::BuildInfoAux;

    use super::*;

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let text =
            b"{\"stream\":\"a\"}\r\n\r\n{\"aux\":{\"ID\":\"sha256:abc\"}}\r\n{\"stream\":\"tail\"}";
        let mut lines = JsonLines::default();
        let mut got = Vec::new();
        for chunk in text.chunks(5) {
            got.extend(lines.push(chunk));
        }
        got.extend(lines.finish());
        let got: Vec<BuildInfo> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].stream.as_deref(), Some("a"));
        match &got[1].aux {
            Some(BuildInfoAux::Default(id)) => assert_eq!(id.id.as_deref(), Some("sha256:abc")),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[2].stream.as_deref(), Some("tail"));
    }

    #[test]
    fn buildkit_trace_decodes_to_a_status() {
        // StatusResponse { vertexes: [Vertex { digest: "d", name: "n" }] },
        // protobuf, base64: the engine's `moby.buildkit.trace` aux.
        let mut lines = JsonLines::default();
        let got = lines.push(b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"CgYKAWQaAW4=\"}\n");
        match &got[0].as_ref().unwrap().aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                assert_eq!(status.vertexes[0].digest, "d");
                assert_eq!(status.vertexes[0].name, "n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_line_is_an_error_showing_it() {
        let mut lines = JsonLines::default();
        let got = lines.push(b"not json\n");
        let e = got.into_iter().next().unwrap().unwrap_err().to_string();
        assert!(e.contains("not json"), "{e}");
    }
}
