//! The analysis fed from bytes pushed past it: an export's layers as they
//! stream by, in whatever order they come, each one's raw bytes (plain tar
//! or gzip) handed over chunk by chunk. A thread of its own reads the
//! headers, so the reader that pushes (the export's converter) never waits
//! on the analysis beyond a few chunks in flight; once told the layers'
//! order, the trees are stacked and the figures made.
//!
//! A layer that can't be read (not a tar, a path over the limits) doesn't
//! stop the bytes: the rest of it is drained, and [`Tap::finish`] says why
//! there are no figures.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{Analysis, Analyzer, History, LayerError, Limits, Tree, read_stored_tree};

/// Chunks in flight between the pushing reader and the analysis: what it
/// may buffer (the converter's chunks are 128 KiB).
const IN_FLIGHT: usize = 16;

enum Message {
    Begin(String),
    Bytes(Vec<u8>),
    End,
    /// The layers' members, lowest first (a member may come twice).
    Order(Vec<String>),
}

/// What the thread made of the layers it was given.
#[derive(Default)]
struct Received {
    /// Each member's tree, or why it has none: a member the order doesn't
    /// name (an OCI export's config blob) may well be no tar.
    trees: HashMap<String, Result<Tree, LayerError>>,
    order: Option<Vec<String>>,
}

/// Takes layers' bytes as they pass; see the module doc.
pub struct Tap {
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<Received>>,
    /// The receiving thread is gone: nothing more is sent.
    gone: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("the export named layer {0:?} but its bytes never passed the analysis")]
    Unseen(String),
    #[error("the export never said in which order its layers go")]
    NoOrder,
    #[error("the layer analysis stopped unexpectedly")]
    Stopped,
}

impl Tap {
    pub fn start(limits: Limits) -> Tap {
        let (sender, receiver) = sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("layer-analysis".into())
            .spawn(move || receive(&receiver, limits))
            .ok();
        Tap {
            gone: thread.is_none(),
            sender: Some(sender),
            thread,
        }
    }

    /// A layer's bytes begin: `member` names it as [`Tap::order`] will.
    pub fn begin(&mut self, member: &str) {
        self.send(Message::Begin(member.to_owned()));
    }

    pub fn bytes(&mut self, chunk: &[u8]) {
        if !chunk.is_empty() {
            self.send(Message::Bytes(chunk.to_vec()));
        }
    }

    pub fn end(&mut self) {
        self.send(Message::End);
    }

    /// The image's layers, lowest first, by the members given to `begin`.
    pub fn order(&mut self, members: &[String]) {
        self.send(Message::Order(members.to_vec()));
    }

    fn send(&mut self, message: Message) {
        if self.gone {
            return;
        }
        if let Some(sender) = &self.sender {
            self.gone = sender.send(message).is_err();
        }
    }

    /// The figures, once every layer has passed and the order is known.
    pub fn finish(mut self, history: &[History], limits: Limits) -> Result<Analysis, TapError> {
        drop(self.sender.take());
        let read = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .ok_or(TapError::Stopped)?;
        let order = read.order.ok_or(TapError::NoOrder)?;
        let mut analyzer = Analyzer::new(limits);
        let mut trees = read.trees;
        for (layer, member) in order.iter().enumerate() {
            if let Some(Err(_)) = trees.get(member) {
                if let Some(Err(failed)) = trees.remove(member) {
                    return Err(failed.at(layer).into());
                }
            }
            match trees.get(member) {
                Some(Ok(tree)) => analyzer.add_tree(tree)?,
                _ => return Err(TapError::Unseen(member.clone())),
            }
        }
        Ok(analyzer.finish(history))
    }
}

/// The thread: each layer's tree, read as its bytes come.
fn receive(receiver: &Receiver<Message>, limits: Limits) -> Received {
    let mut read = Received::default();
    let mut held = 0;
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Begin(member) => {
                let mut layer = Chunks {
                    receiver,
                    chunk: Vec::new(),
                    at: 0,
                    ended: false,
                };
                let tree = read_stored_tree(&mut layer, read.trees.len(), limits, &mut held);
                layer.drain();
                read.trees.insert(member, tree);
            }
            Message::Order(order) => read.order = Some(order),
            Message::Bytes(_) | Message::End => {}
        }
    }
    read
}

/// One layer's chunks as a reader, up to its `End`.
struct Chunks<'a> {
    receiver: &'a Receiver<Message>,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Chunks<'_> {
    /// Whatever of the layer the tar reader left (padding, or all of it
    /// after a failure), so the next message is the next layer's.
    fn drain(&mut self) {
        while !self.ended {
            self.next_chunk();
        }
    }

    fn next_chunk(&mut self) {
        match self.receiver.recv() {
            Ok(Message::Bytes(chunk)) => {
                self.chunk = chunk;
                self.at = 0;
            }
            // The sender never interleaves layers: anything else ends this one.
            Ok(_) | Err(_) => self.ended = true,
        }
    }
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() && !self.ended {
            self.next_chunk();
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn layer(files: &[(&str, usize)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, size) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(*size as u64);
            builder
                .append_data(&mut header, path, &vec![1u8; *size][..])
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn push(tap: &mut Tap, member: &str, bytes: &[u8]) {
        tap.begin(member);
        for chunk in bytes.chunks(1000) {
            tap.bytes(chunk);
        }
        tap.end();
    }

    #[test]
    fn layers_in_any_order_plain_or_gzip_equal_the_analysis_in_order() {
        let lower = layer(&[("a", 3000), ("b", 10)]);
        let upper = layer(&[("a", 2000)]);
        let mut in_order = Analyzer::new(Limits::default());
        in_order.add_layer(&lower[..]).unwrap();
        in_order.add_layer(&upper[..]).unwrap();
        in_order.add_layer(&lower[..]).unwrap();
        let expected = in_order.finish(&[]);

        let mut tap = Tap::start(Limits::default());
        push(&mut tap, "up", &gzip(&upper));
        push(&mut tap, "low", &lower);
        tap.order(&["low".into(), "up".into(), "low".into()]);
        let analysis = tap.finish(&[], Limits::default()).unwrap();
        assert_eq!(analysis, expected);
        assert_eq!(analysis.wasted_bytes, 3000 + 2000 + 3000 + 10 + 10);
        let wasted: Vec<u64> = analysis.layers.iter().map(|l| l.wasted).collect();
        assert_eq!(wasted, [3010, 2000, 3010]);
    }

    #[test]
    fn a_member_the_order_doesnt_name_may_be_anything() {
        let mut tap = Tap::start(Limits::default());
        push(&mut tap, "config", b"{\"history\":[]}");
        push(&mut tap, "layer", &layer(&[("a", 1)]));
        tap.order(&["layer".into()]);
        let analysis = tap.finish(&[], Limits::default()).unwrap();
        assert_eq!(analysis.total_size, 1);
    }

    #[test]
    fn an_unreadable_layer_is_drained_and_named() {
        let mut tap = Tap::start(Limits::default());
        push(&mut tap, "good", &layer(&[("a", 1)]));
        push(&mut tap, "bad", &[7u8; 5000]);
        tap.order(&["bad".into(), "good".into()]);
        let err = tap.finish(&[], Limits::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("layer 0 isn't a readable tar"),
            "{err}"
        );

        let mut tap = Tap::start(Limits::default());
        push(&mut tap, "good", &layer(&[("a", 1)]));
        tap.order(&["good".into(), "missing".into()]);
        let err = tap.finish(&[], Limits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the export named layer \"missing\" but its bytes never passed the analysis"
        );
    }
}
