//! Gzip for layer blobs: many streams compressed at once on every core, with
//! bytes that depend on the input alone, never on the number of threads or
//! on how the input was handed over.
//!
//! Each stream is cut into [`CHUNK`]-byte pieces at fixed offsets, as pigz
//! does. A piece is deflated on its own, primed with the 32 KiB of input
//! before it (so matches across a cut are still found), and ends with a
//! sync flush (the last one with the final block): the pieces laid end to
//! end form one ordinary deflate stream, inside one ordinary gzip member.
//! Pieces of one stream and of the streams after it are compressed side by
//! side; the calling thread writes them out in order.
//!
//! A piece whose samples don't shrink (already-compressed files: archives,
//! images, packed binaries) is stored rather than deflated: deflating such
//! data costs as much as deflating text and saves nothing.
//!
//! The output is a function of the input and of the constants here and
//! the backend's version: changing [`CHUNK`], [`LEVEL`] or the sampling
//! changes the digest of every new layer (layers already pushed are reused
//! by diff ID, see `export`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use crc32fast::Hasher as Crc;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Input bytes per piece: big enough that the sync flush (5 bytes) and the
/// cold start at each cut cost nothing measurable, small enough that a
/// layer of a few MiB still spreads over the cores.
const CHUNK: usize = 1 << 20;
/// zlib-rs level 5 compresses text within 1% of level 6 (what `gzip` and
/// Go's `docker push` use) at about 1.4× its speed; level 4 is 3% bigger.
const LEVEL: u32 = 5;
/// Deflate's window: what a piece needs of the input before it.
const WINDOW: usize = 32 * 1024;
/// Three samples this long are 5% of a piece, so a stored piece costs a
/// twentieth of deflating it, and a compressible one 1.5% more (its first
/// sample settles it). Repeats farther apart than this in otherwise
/// incompressible bytes go unseen: rare, and the piece is only stored.
const SAMPLE: usize = 16 * 1024;

/// A failure, with the index (from [`Gzip::begin`]) of the stream it hit.
#[derive(Debug)]
pub struct Failed {
    pub stream: usize,
    pub source: io::Error,
}

/// Compresses streams started with [`begin`](Gzip::begin) into their
/// writers, on worker threads of a scope it cannot outlive (the scope joins
/// the workers, which stop when this is dropped).
pub struct Gzip<'scope, W> {
    tasks: SyncSender<Task>,
    streams: Vec<Stream<W>>,
    /// Streams whose last piece is written, with their writers, not yet
    /// handed back by [`take_finished`](Gzip::take_finished).
    finished: Vec<(usize, W)>,
    /// Pieces sent to the workers, oldest first: written in this order.
    pending: VecDeque<(usize, Receiver<io::Result<Piece>>)>,
    /// Pieces in flight at most: memory stays at a few `CHUNK`s per thread.
    max_pending: usize,
    scope: PhantomData<&'scope ()>,
}

struct Stream<W> {
    /// `None` once the stream is finished and its writer handed over.
    out: Option<W>,
    /// Input not yet sent, less than a `CHUNK`.
    buf: Vec<u8>,
    /// The last `WINDOW` bytes of input sent, to prime the next piece.
    window: Vec<u8>,
    crc: Crc,
    len: u64,
}

struct Task {
    data: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Piece>>,
}

struct Piece {
    deflated: Vec<u8>,
    crc: Crc,
    last: bool,
}

impl<'scope, W: Write> Gzip<'scope, W> {
    /// Starts `threads` workers (at least one) that live until `self` is
    /// dropped or finished.
    pub fn new(scope: &'scope Scope<'scope, '_>, threads: usize) -> Self {
        let threads = threads.max(1);
        let max_pending = 2 * threads;
        let (tasks, queue) = mpsc::sync_channel::<Task>(max_pending);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            scope.spawn(move || work(&queue));
        }
        Gzip {
            tasks,
            streams: Vec::new(),
            finished: Vec::new(),
            pending: VecDeque::new(),
            max_pending,
            scope: PhantomData,
        }
    }

    /// Starts a stream into `out`; returns its index.
    pub fn begin(&mut self, mut out: W) -> Result<usize, Failed> {
        let stream = self.streams.len();
        out.write_all(&header())
            .map_err(|source| Failed { stream, source })?;
        self.streams.push(Stream {
            out: Some(out),
            buf: Vec::with_capacity(CHUNK),
            window: Vec::new(),
            crc: Crc::new(),
            len: 0,
        });
        Ok(stream)
    }

    pub fn write(&mut self, stream: usize, mut data: &[u8]) -> Result<(), Failed> {
        while !data.is_empty() {
            let buf = &mut self.streams[stream].buf;
            let take = (CHUNK - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buf.len() == CHUNK {
                self.send(stream, false)?;
            }
        }
        Ok(())
    }

    /// Ends a stream: nothing more may be written to it.
    pub fn end(&mut self, stream: usize) -> Result<(), Failed> {
        self.send(stream, true)
    }

    /// The streams completed so far (gzip trailer written), each with its
    /// index and writer, so a caller can use a blob while later ones are
    /// still being compressed.
    pub fn take_finished(&mut self) -> Vec<(usize, W)> {
        std::mem::take(&mut self.finished)
    }

    /// Waits for every piece, and returns the writers not yet taken, in the
    /// order begun.
    pub fn finish(mut self) -> Result<Vec<(usize, W)>, Failed> {
        while self.write_oldest()? {}
        let mut rest = std::mem::take(&mut self.finished);
        rest.sort_by_key(|(stream, _)| *stream);
        Ok(rest)
    }

    fn send(&mut self, stream: usize, last: bool) -> Result<(), Failed> {
        let s = &mut self.streams[stream];
        let (next, window) = if last {
            (Vec::new(), Vec::new())
        } else {
            // Not the last piece, so a full CHUNK.
            let window = s.buf[CHUNK - WINDOW..].to_vec();
            (Vec::with_capacity(CHUNK), window)
        };
        let data = std::mem::replace(&mut s.buf, next);
        let dictionary = std::mem::replace(&mut s.window, window);
        s.len += data.len() as u64;

        let (reply, receiver) = mpsc::channel();
        let task = Task {
            data,
            dictionary,
            last,
            reply,
        };
        self.tasks.send(task).map_err(|_| stopped(stream))?;
        self.pending.push_back((stream, receiver));
        while self.pending.len() > self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Writes the oldest piece once compressed; false when none is left.
    fn write_oldest(&mut self) -> Result<bool, Failed> {
        let Some((stream, receiver)) = self.pending.pop_front() else {
            return Ok(false);
        };
        let fail = |source| Failed { stream, source };
        let piece = receiver
            .recv()
            .map_err(|_| stopped(stream))?
            .map_err(fail)?;
        let s = &mut self.streams[stream];
        let out = s.out.as_mut().ok_or_else(|| stopped(stream))?;
        out.write_all(&piece.deflated).map_err(fail)?;
        s.crc.combine(&piece.crc);
        if piece.last {
            let crc = s.crc.clone().finalize();
            let mut trailer = [0; 8];
            trailer[..4].copy_from_slice(&crc.to_le_bytes());
            // ISIZE is the length modulo 2^32 (RFC 1952).
            trailer[4..].copy_from_slice(&(s.len as u32).to_le_bytes());
            out.write_all(&trailer).map_err(fail)?;
            if let Some(out) = s.out.take() {
                self.finished.push((stream, out));
            }
        }
        Ok(true)
    }
}

/// A gzip header without name or comment, mtime 0 and OS "unknown" (as
/// flate2's `GzBuilder` writes them): nothing in it varies.
fn header() -> [u8; 10] {
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]
}

fn work(queue: &Mutex<Receiver<Task>>) {
    loop {
        // The lock is held only while waiting for a task, never while
        // compressing; a poisoned lock means another worker panicked.
        let task = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else {
            return;
        };
        let mut crc = Crc::new();
        crc.update(&task.data);
        let deflated = deflate_piece(&task.data, &task.dictionary, task.last);
        // The receiver is gone only if the caller gave up on the stream.
        let _ = task.reply.send(deflated.map(|deflated| Piece {
            deflated,
            crc,
            last: task.last,
        }));
    }
}

fn deflate_piece(data: &[u8], dictionary: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let level = if incompressible(data)? {
        Compression::none()
    } else {
        Compression::new(LEVEL)
    };
    let mut deflate = Compress::new(level, false);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    deflate_into(&mut deflate, data, flush)
}

/// Whether samples from the start, middle and end of `data` all fail to
/// shrink by 1/64 at `LEVEL`. Any compressible sample settles it, usually
/// the first, so text pays for one sample per piece.
fn incompressible(data: &[u8]) -> io::Result<bool> {
    if data.len() < 3 * SAMPLE {
        return Ok(false);
    }
    for start in [0, (data.len() - SAMPLE) / 2, data.len() - SAMPLE] {
        let sample = &data[start..start + SAMPLE];
        let mut deflate = Compress::new(Compression::new(LEVEL), false);
        let deflated = deflate_into(&mut deflate, sample, FlushCompress::Finish)?;
        if deflated.len() < SAMPLE - SAMPLE / 64 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn deflate_into(deflate: &mut Compress, data: &[u8], flush: FlushCompress) -> io::Result<Vec<u8>> {
    // Room for stored blocks' overhead, so one call nearly always does it.
    let mut out = Vec::with_capacity(data.len() + data.len() / 1024 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity());
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() as usize == data.len();
        // A flush is complete when it left output room unused.
        let flushed = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => out.len() < out.capacity(),
        };
        if all_in && flushed {
            return Ok(out);
        }
    }
}

fn stopped(stream: usize) -> Failed {
    Failed {
        stream,
        source: io::Error::other("a compression worker stopped"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    /// Text-like bytes: compressible, but not one repeat.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut n: u64 = 1;
        while out.len() < len {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("line {} of {}\n", n >> 52, n >> 60).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// Incompressible bytes (xorshift).
    fn noise(len: usize, mut x: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Compresses each input as one stream, the streams interleaved, with
    /// writes of `step` bytes.
    fn compress(inputs: &[&[u8]], threads: usize, step: usize) -> Vec<Vec<u8>> {
        std::thread::scope(|scope| {
            let mut gzip = Gzip::new(scope, threads);
            let streams: Vec<usize> = inputs
                .iter()
                .map(|_| gzip.begin(Vec::new()).unwrap())
                .collect();
            let longest = inputs.iter().map(|i| i.len()).max().unwrap_or(0);
            let mut outputs = vec![None; inputs.len()];
            for at in (0..longest).step_by(step) {
                for (&stream, input) in streams.iter().zip(inputs) {
                    let part = input.get(at..input.len().min(at + step)).unwrap_or(&[]);
                    gzip.write(stream, part).unwrap();
                }
            }
            for stream in streams {
                gzip.end(stream).unwrap();
                for (done, out) in gzip.take_finished() {
                    outputs[done] = Some(out);
                }
            }
            for (done, out) in gzip.finish().unwrap() {
                outputs[done] = Some(out);
            }
            outputs.into_iter().map(Option::unwrap).collect()
        })
    }

    #[test]
    fn a_stream_is_handed_back_once_complete_while_others_go_on() {
        let first = text(CHUNK / 2);
        let second = text(8 * CHUNK);
        std::thread::scope(|scope| {
            let mut gzip = Gzip::new(scope, 2);
            let a = gzip.begin(Vec::new()).unwrap();
            let b = gzip.begin(Vec::new()).unwrap();
            gzip.write(a, &first).unwrap();
            gzip.end(a).unwrap();
            // Pieces of `b` push the last piece of `a` out.
            gzip.write(b, &second).unwrap();
            let early = gzip.take_finished();
            assert_eq!(early.len(), 1);
            assert_eq!(early[0].0, a);
            assert_eq!(gunzip(&early[0].1), first);
            assert!(gzip.take_finished().is_empty());
            gzip.end(b).unwrap();
            let rest = gzip.finish().unwrap();
            assert_eq!(rest.len(), 1);
            assert_eq!((rest[0].0, gunzip(&rest[0].1)), (b, second.clone()));
        });
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut decoder = GzDecoder::new(bytes);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        // One member, nothing after it.
        assert!(decoder.into_inner().is_empty());
        out
    }

    #[test]
    fn streams_round_trip_across_piece_boundaries() {
        let long = text(2 * CHUNK + CHUNK / 2);
        let inputs: Vec<&[u8]> = vec![
            &[],
            b"x",
            &long[..CHUNK - 1],
            &long[..CHUNK],
            &long[..CHUNK + 1],
            &long,
        ];
        for (output, input) in compress(&inputs, 3, 100_000).iter().zip(&inputs) {
            assert_eq!(&gunzip(output), input);
            assert_eq!(output[..10], header());
        }
    }

    #[test]
    fn bytes_depend_on_the_input_only() {
        let mixed = [text(CHUNK + 12_345), noise(CHUNK, 7), text(CHUNK / 3)].concat();
        let other = text(3 * CHUNK / 2);
        let inputs: [&[u8]; 2] = [&mixed, &other];
        let one_thread = compress(&inputs, 1, CHUNK);
        assert_eq!(compress(&inputs, 4, 4096), one_thread);
        assert_eq!(compress(&inputs[..1], 2, 777_777)[0], one_thread[0]);
    }

    #[test]
    fn incompressible_pieces_are_stored_and_text_is_deflated() {
        let noise = noise(CHUNK + 100, 3);
        let text = text(CHUNK);
        let out = compress(&[&noise, &text], 2, CHUNK);
        // Stored blocks: 5 bytes per 64 KiB, plus header and trailer.
        assert!(
            out[0].len() < noise.len() + noise.len() / 1000,
            "{}",
            out[0].len()
        );
        assert_eq!(gunzip(&out[0]), noise);
        assert!(out[1].len() < text.len() / 3, "{}", out[1].len());
    }

    #[test]
    fn pieces_are_primed_with_the_input_before_them() {
        // The second piece only repeats the last 4 KiB of the first
        // (incompressible) one: primed with them, it shrinks to under
        // 1 KiB; cold, its first 4 KiB would cost their size.
        let first = noise(CHUNK, 11);
        let tail = &first[CHUNK - 4 * 1024..];
        let input = [first.clone(), tail.repeat(16)].concat();
        let out = &compress(&[&input], 2, CHUNK)[0];
        assert!(out.len() < CHUNK + 2 * 1024, "{}", out.len());
        assert_eq!(gunzip(out), input);
    }
}
