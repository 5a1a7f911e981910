//! gzip bodies stitched from kept pieces, so a compressed answer costs no compression.
//!
//! A gzip member is one DEFLATE stream (RFC 1951) between a 10-byte header and a trailer
//! of the CRC-32 and the length of what it holds (RFC 1952). A DEFLATE stream is a series
//! of blocks, and a block compressed on its own and ended with a sync flush ends on a
//! byte boundary, is not the last block and refers to nothing before it: such
//! [`Segment`]s can be laid one after the other, with stored (uncompressed) blocks
//! between them for the bytes that differ from one answer to the next, and the CRC-32s
//! of the pieces combined, without inflating or deflating anything ([`Stitch`]; pigz
//! builds its output the same way when each block is compressed on its own, `pigz -i`).
//! The availability answer keeps one segment
//! per cached day next to the day's JSON, so a week's compressed answer is its head,
//! seven kept segments and its closing brackets, as the plain answer is.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use zlib_rs::crc32::{crc32, crc32_combine_gen, crc32_combine_op};

use crate::body::Chunks;

/// The compression level of kept segments: the fastest. A day's JSON is one pattern
/// repeated (the same keys, the same staff ids, instants a step apart), which the fastest
/// level already takes to about a twentieth; a segment is made once per day and kept.
const LEVEL: u32 = 1;

/// The most bytes a stored block holds (its length is 16 bits).
const STORED_MAX_BYTES: usize = u16::MAX as usize;

/// A gzip member's header: the magic, method 8 (DEFLATE), no flags, no modification
/// time, no extra flags, operating system "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `bytes` compressed as DEFLATE blocks that can sit anywhere in a stream (see the
/// module), with the CRC-32 and length of `bytes`.
#[derive(Clone, Debug)]
pub struct Segment {
    deflated: Bytes,
    crc: u32,
    inflated_bytes: u64,
    /// What appending the segment's bytes does to a CRC-32 (zlib's `crc32_combine_gen`):
    /// it depends on their length alone, so it is worked out once, not at every answer.
    combine: u32,
}

thread_local! {
    /// One compressor per thread, reset between segments: a new one allocates its
    /// window and hash tables, a few hundred KB.
    static COMPRESS: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

impl Segment {
    /// Compress `bytes` into a segment.
    pub fn deflate(bytes: &[u8]) -> Segment {
        let mut deflated = Vec::with_capacity(bytes.len() / 8 + 64);
        COMPRESS.with_borrow_mut(|compress| {
            compress.reset();
            loop {
                let read = compress.total_in() as usize;
                if deflated.len() == deflated.capacity() {
                    deflated.reserve(deflated.capacity());
                }
                compress
                    .compress_vec(&bytes[read..], &mut deflated, FlushCompress::Sync)
                    .expect("deflate into memory does not fail");
                // Done once everything is read and the flush's output fitted: a sync
                // flush that ran out of room leaves the rest for the next call.
                if compress.total_in() as usize == bytes.len()
                    && deflated.len() < deflated.capacity()
                {
                    break;
                }
            }
        });
        Segment {
            deflated: Bytes::from(deflated),
            crc: crc32(0, bytes),
            inflated_bytes: bytes.len() as u64,
            combine: crc32_combine_gen(bytes.len() as u64),
        }
    }

    /// How many compressed bytes the segment holds.
    pub fn len(&self) -> usize {
        self.deflated.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deflated.is_empty()
    }
}

/// A gzip body being laid out: plain bytes and kept segments, in order.
///
/// Everything but the segments (the header, the stored blocks and the trailer) is
/// written into one buffer, which the body's chunks slice: a week's answer is that
/// buffer's eight slices around seven shared segments, 15 chunks, within the 16 buffers
/// hyper hands to one `writev`. The buffer is one allocation when [`Stitch::new`] is told
/// how many plain bytes come.
pub struct Stitch {
    framing: Vec<u8>,
    /// Each segment with the length of `framing` it follows.
    segments: Vec<(usize, Bytes)>,
    /// Where the open stored block's header is in `framing`, if one is open.
    open: Option<usize>,
    /// The CRC-32 of everything laid out so far, uncompressed.
    crc: u32,
    /// The length of everything laid out so far, uncompressed.
    inflated_bytes: u64,
}

/// A stored block's header: the BFINAL bit and BTYPE 00 padded to a byte, then LEN and
/// its one's complement (RFC 1951 3.2.4).
const STORED_HEADER: usize = 5;

impl Stitch {
    /// A body with room for `segments` segments and `plain` plain bytes without growing.
    pub fn new(segments: usize, plain: usize) -> Stitch {
        let mut framing =
            Vec::with_capacity(HEADER.len() + plain + STORED_HEADER * (segments + 2) + 8);
        framing.extend_from_slice(&HEADER);
        Stitch {
            framing,
            segments: Vec::with_capacity(segments),
            open: None,
            crc: 0,
            inflated_bytes: 0,
        }
    }

    /// Bytes sent as they are (stored blocks): what differs between answers, which is
    /// short, or what was not worth a segment.
    pub fn plain(&mut self, mut bytes: &[u8]) {
        self.crc = crc32(self.crc, bytes);
        self.inflated_bytes += bytes.len() as u64;
        while !bytes.is_empty() {
            let start = *self.open.get_or_insert_with(|| {
                self.framing.extend_from_slice(&[0; STORED_HEADER]);
                self.framing.len() - STORED_HEADER
            });
            let room = STORED_MAX_BYTES - (self.framing.len() - start - STORED_HEADER);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.framing.extend_from_slice(now);
            bytes = rest;
            if now.len() == room {
                self.close(false);
            }
        }
    }

    /// A kept segment, shared, not copied.
    pub fn segment(&mut self, segment: &Segment) {
        self.close(false);
        // One product modulo the polynomial with the segment's kept operator: a week's
        // seven combinations cost 2-3 µs when each one worked its operator out anew.
        self.crc = crc32_combine_op(self.crc, segment.crc, segment.combine);
        self.inflated_bytes += segment.inflated_bytes;
        self.segments
            .push((self.framing.len(), segment.deflated.clone()));
    }

    /// The whole body: the plain bytes left in the stream's last block (an empty one if
    /// there are none), then the trailer.
    pub fn finish(mut self) -> Chunks {
        if self.open.is_none() {
            self.framing.extend_from_slice(&[0; STORED_HEADER]);
            self.open = Some(self.framing.len() - STORED_HEADER);
        }
        self.close(true);
        self.framing.extend_from_slice(&self.crc.to_le_bytes());
        // ISIZE is the length modulo 2^32.
        self.framing
            .extend_from_slice(&(self.inflated_bytes as u32).to_le_bytes());
        let framing = Bytes::from(self.framing);
        let mut chunks = Vec::with_capacity(2 * self.segments.len() + 1);
        let mut from = 0;
        for (at, segment) in self.segments {
            if at > from {
                chunks.push(framing.slice(from..at));
            }
            chunks.push(segment);
            from = at;
        }
        chunks.push(framing.slice(from..));
        Chunks::new(chunks)
    }

    /// Write the open stored block's header, marked final if `last`.
    fn close(&mut self, last: bool) {
        let Some(start) = self.open.take() else {
            return;
        };
        let len = u16::try_from(self.framing.len() - start - STORED_HEADER)
            .expect("a stored block holds at most 65,535 bytes");
        self.framing[start] = u8::from(last);
        self.framing[start + 1..start + 3].copy_from_slice(&len.to_le_bytes());
        self.framing[start + 3..start + 5].copy_from_slice(&(!len).to_le_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use flate2::bufread::GzDecoder;
    use proptest::prelude::*;

    use super::*;

    /// A gzip body inflated, checking that it is one member with nothing after it (the
    /// decoder checks the CRC-32 and the length).
    pub(crate) fn gunzip(compressed: &[u8]) -> Vec<u8> {
        // The `bufread` decoder reads no further than the member, so what is left after
        // it is exact (the `read` one buffers 32 KiB ahead).
        let mut decoder = GzDecoder::new(compressed);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).expect("a valid gzip member");
        let rest = decoder.into_inner();
        assert!(rest.is_empty(), "{} bytes after the member", rest.len());
        out
    }

    /// A day's worth of the availability answer's kind of JSON.
    fn slots(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| {
                format!(
                    r#",{{"start":"2026-12-01T{:02}:{:02}:00-03:00","staff_ids":["0193a1b2-0000-7000-8000-00000000000{}"]}}"#,
                    8 + i / 4,
                    i % 4 * 15,
                    i % 3
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_kept_day_compresses_to_a_small_part_of_itself() {
        let day = slots(48);
        let segment = Segment::deflate(&day);
        assert!(
            segment.len() * 8 < day.len(),
            "{} of {}",
            segment.len(),
            day.len()
        );
    }

    #[test]
    fn an_empty_body_is_a_valid_member() {
        assert_eq!(gunzip(&Stitch::new(0, 0).finish().to_bytes()), b"");
    }

    #[test]
    fn plain_bytes_over_one_stored_block_are_split() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for size in [
            STORED_MAX_BYTES - 1,
            STORED_MAX_BYTES,
            STORED_MAX_BYTES + 1,
            3 * STORED_MAX_BYTES,
            big.len(),
        ] {
            let big = &big[..size];
            // Then a segment, or the end of the body, right behind a full block.
            let mut stitch = Stitch::new(1, 0);
            stitch.plain(big);
            stitch.segment(&Segment::deflate(b"tail"));
            assert_eq!(gunzip(&stitch.finish().to_bytes()), [big, b"tail"].concat());
            let mut stitch = Stitch::new(0, 0);
            stitch.plain(big);
            assert_eq!(gunzip(&stitch.finish().to_bytes()), big);
        }
    }

    /// A week's answer is one chunk of framing between segments, and around them.
    #[test]
    fn the_framing_is_one_chunk_between_segments() {
        let day = Segment::deflate(&slots(40));
        let mut stitch = Stitch::new(7, 100);
        stitch.plain(b"{\"slots\":[");
        for n in 0..7 {
            if n > 0 {
                stitch.plain(b",");
            }
            stitch.segment(&day);
        }
        stitch.plain(b"]}");
        let body = stitch.finish();
        assert_eq!(body.chunks_left(), 15);
        gunzip(&body.to_bytes());
    }

    #[test]
    fn one_segment_reused_by_many_answers() {
        let day = Segment::deflate(&slots(40));
        for head in ["{\"a\":[", "{\"much longer head\":["] {
            let mut stitch = Stitch::new(2, 0);
            stitch.plain(head.as_bytes());
            stitch.segment(&day);
            stitch.plain(b",");
            stitch.segment(&day);
            stitch.plain(b"]}");
            let expected = [head.as_bytes(), &slots(40), b",", &slots(40), b"]}"].concat();
            assert_eq!(gunzip(&stitch.finish().to_bytes()), expected);
        }
    }

    /// A piece of a body: plain bytes or a segment of them.
    #[derive(Clone, Debug)]
    enum Piece {
        Plain(Vec<u8>),
        Segment(Vec<u8>),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        let bytes = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            (0usize..120).prop_map(slots),
        ];
        (any::<bool>(), bytes).prop_map(|(plain, b)| match plain {
            true => Piece::Plain(b),
            false => Piece::Segment(b),
        })
    }

    proptest! {
        /// Whatever pieces, in whatever order (empty ones, segments side by side,
        /// incompressible bytes), the body inflates to their concatenation, with the
        /// right CRC-32 and length (the decoder checks both).
        #[test]
        fn a_stitched_body_inflates_to_its_pieces(pieces in proptest::collection::vec(piece(), 0..12)) {
            let mut stitch = Stitch::new(pieces.len(), 0);
            let mut expected = Vec::new();
            for piece in &pieces {
                match piece {
                    Piece::Plain(b) => stitch.plain(b),
                    Piece::Segment(b) => stitch.segment(&Segment::deflate(b)),
                }
                let (Piece::Plain(b) | Piece::Segment(b)) = piece;
                expected.extend_from_slice(b);
            }
            prop_assert_eq!(gunzip(&stitch.finish().to_bytes()), expected);
        }
    }
}
