//! The WebSocket wire format (RFC 6455 §5), server side: parsing the client's frames and
//! writing ours. Pure functions and one small state machine; no I/O, so the `ws_frame` fuzz
//! target runs exactly this.
//!
//! Why our own instead of tungstenite: an idle connection should cost almost nothing, and a
//! library stream keeps a read buffer, a write buffer and its own state per socket whether or
//! not anything is happening. Here the bytes of a frame live on the reading task's stack while
//! it is parsed; only a frame cut in half by the network (rare: chat frames are small) is kept
//! between reads, in [`Decoder::partial`], and freed as soon as it completes. Writing needs no
//! buffer either: a frame is a header of at most 10 bytes written together with the shared,
//! already-serialized payload (`writev`).
//!
//! What the server accepts: masked frames only (§5.1: a client that does not mask is closed
//! with 1002), text messages in one frame or fragmented (continuations), control frames
//! (ping, pong, close) of at most 125 bytes and never fragmented, no extensions (the RSV bits
//! must be 0: none are negotiated), valid UTF-8 in text (else 1007). A message longer than
//! `max_message` closes the socket with 4009 as soon as its header says so, before its bytes
//! are read.

use std::fmt;

/// Close codes this layer decides on (the gateway adds the contract's own).
pub mod close {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
}

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Why the client's bytes cannot be accepted; the socket closes with [`Violation::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Not a valid WebSocket stream (unmasked, reserved bits or opcodes, bad control frame,
    /// continuation without a start…).
    Protocol(&'static str),
    /// A text message that is not UTF-8.
    NotUtf8,
    /// A message larger than allowed.
    TooLarge,
}

impl Violation {
    /// The close code for it; `too_large` is the gateway's (the contract's 4009).
    pub fn code(&self, too_large: u16) -> u16 {
        match self {
            Violation::Protocol(_) => close::PROTOCOL_ERROR,
            Violation::NotUtf8 => close::INVALID_PAYLOAD,
            Violation::TooLarge => too_large,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Violation::Protocol(why) => why,
            Violation::NotUtf8 => "text is not UTF-8",
            Violation::TooLarge => "frame too large",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// One complete message (or control frame) from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Text(&'a str),
    /// Binary messages are not part of the protocol; the gateway answers them with an error.
    Binary,
    Ping(&'a [u8]),
    Pong,
    /// The client's close frame: its code, if it gave a valid one.
    Close(Option<u16>),
}

/// What the decoder keeps between reads: nothing while a connection is idle (one empty
/// pointer). Only while a frame or a fragmented message is half-way through is [`Held`]
/// allocated, and it is freed as soon as that completes.
#[derive(Debug, Default)]
pub struct Decoder {
    held: Option<Box<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    /// Bytes of a frame that did not fully arrive yet (its header included).
    partial: Vec<u8>,
    /// A fragmented message being assembled (its first frame had FIN = 0).
    message: Vec<u8>,
    /// Whether a fragmented message is in progress (`message` may be empty so far).
    in_message: bool,
    /// The opcode of the fragmented message (text or binary).
    message_op: u8,
    /// `partial` holds bytes nobody tried to parse yet (given at construction).
    unparsed: bool,
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: usize,
    header_len: usize,
}

/// Parses a frame header; `Ok(None)` when more bytes are needed.
fn header(buf: &[u8], max_message: usize) -> Result<Option<Header>, Violation> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(Violation::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b1 & 0x80 == 0 {
        return Err(Violation::Protocol("client frames must be masked"));
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            if n >> 63 != 0 {
                return Err(Violation::Protocol("frame length out of range"));
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {
            if len > max_message as u64 {
                return Err(Violation::TooLarge);
            }
        }
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err(Violation::Protocol("fragmented control frame"));
            }
            if len > 125 {
                return Err(Violation::Protocol("control frame too long"));
            }
        }
        _ => return Err(Violation::Protocol("reserved opcode")),
    }
    if buf.len() < at + 4 {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[at..at + 4]);
    at += 4;
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len: len as usize,
        header_len: at,
    }))
}

fn unmask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

impl Decoder {
    /// A decoder that starts with bytes already read (what the HTTP layer read past the
    /// upgrade request, if anything).
    pub fn with_input(bytes: &[u8]) -> Decoder {
        let mut d = Decoder::default();
        if !bytes.is_empty() {
            let h = d.held_mut();
            h.partial = bytes.to_vec();
            h.unparsed = true;
        }
        d
    }

    fn held_mut(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Box::default)
    }

    /// Whether a frame or a message is half-way through (memory is held).
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// Whether bytes read earlier wait to be parsed (given at construction, or left when
    /// `on` stopped): feed an empty input.
    pub fn has_input(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.unparsed)
    }

    /// Bytes held between reads (for tests and metrics).
    pub fn held(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, |h| h.partial.capacity() + h.message.capacity())
    }

    /// Parses what arrived (`input`, unmasked in place) and calls `on` with every complete
    /// message in order. `on` returns `false` to stop; the bytes after that message are kept
    /// and parsed first by the next call ([`Decoder::has_input`]). A violation stops parsing
    /// and is returned.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        max_message: usize,
        mut on: impl FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Violation> {
        let result = match self.held.as_mut().filter(|h| !h.partial.is_empty()) {
            Some(h) => {
                h.unparsed = false;
                // The rare path: a frame was cut in two. Join the pieces on the heap.
                let mut joined = std::mem::take(&mut h.partial);
                joined.extend_from_slice(input);
                self.feed_slice(&mut joined, max_message, &mut on)
            }
            None => self.feed_slice(input, max_message, &mut on),
        };
        // Nothing half-way through any more: give the memory back.
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.partial.is_empty() && !h.in_message)
        {
            self.held = None;
        }
        result
    }

    fn feed_slice(
        &mut self,
        input: &mut [u8],
        max_message: usize,
        on: &mut impl FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), Violation> {
        let mut at = 0;
        while at < input.len() {
            let Some(h) = header(&input[at..], max_message)? else {
                break;
            };
            let end = at + h.header_len + h.len;
            if end > input.len() {
                break;
            }
            let payload = &mut input[at + h.header_len..end];
            unmask(payload, h.mask);
            at = end;
            if !self.frame(h.fin, h.opcode, payload, max_message, on)? {
                // Stopped: what follows was sent already (a client may pipeline frames right
                // behind its `auth`); keep it, unparsed, for the next call.
                let rest = &input[at..];
                if !rest.is_empty() {
                    let held = self.held_mut();
                    held.partial = rest.to_vec();
                    held.unparsed = true;
                } else if let Some(held) = self.held.as_mut() {
                    held.partial = Vec::new();
                }
                return Ok(());
            }
        }
        let rest = &input[at..];
        if !rest.is_empty() {
            self.held_mut().partial = rest.to_vec();
        }
        Ok(())
    }

    /// One complete frame; returns whether to go on.
    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        max_message: usize,
        on: &mut impl FnMut(Incoming<'_>) -> bool,
    ) -> Result<bool, Violation> {
        let in_message = self.held.as_ref().is_some_and(|h| h.in_message);
        match opcode {
            OP_PING => Ok(on(Incoming::Ping(payload))),
            OP_PONG => Ok(on(Incoming::Pong)),
            OP_CLOSE => {
                let code = match payload.len() {
                    0 => None,
                    1 => return Err(Violation::Protocol("close frame of one byte")),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !close_code_allowed(code) {
                            return Err(Violation::Protocol("close code not allowed on the wire"));
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return Err(Violation::NotUtf8);
                        }
                        Some(code)
                    }
                };
                Ok(on(Incoming::Close(code)))
            }
            OP_TEXT | OP_BINARY => {
                if in_message {
                    return Err(Violation::Protocol("new message inside a fragmented one"));
                }
                if fin {
                    return complete(opcode, payload, on);
                }
                let h = self.held_mut();
                h.in_message = true;
                h.message_op = opcode;
                h.message = payload.to_vec();
                Ok(true)
            }
            _ => {
                // Continuation.
                if !in_message {
                    return Err(Violation::Protocol("continuation without a message"));
                }
                let h = self.held_mut();
                if h.message.len() + payload.len() > max_message {
                    return Err(Violation::TooLarge);
                }
                h.message.extend_from_slice(payload);
                if !fin {
                    return Ok(true);
                }
                let message = std::mem::take(&mut h.message);
                h.in_message = false;
                let op = h.message_op;
                complete(op, &message, on)
            }
        }
    }
}

fn complete(
    opcode: u8,
    payload: &[u8],
    on: &mut impl FnMut(Incoming<'_>) -> bool,
) -> Result<bool, Violation> {
    if opcode == OP_BINARY {
        return Ok(on(Incoming::Binary));
    }
    let text = std::str::from_utf8(payload).map_err(|_| Violation::NotUtf8)?;
    Ok(on(Incoming::Text(text)))
}

/// The header of an unmasked server frame with FIN set: its bytes and length.
pub fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= usize::from(u16::MAX) {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Whether a peer may send `code` in a Close frame (RFC 6455 §7.4): the defined codes
/// except 1004 (reserved), 1005 and 1006 (never sent, only reported locally), the IANA
/// registered 1012–1014, and 3000–4999 for libraries and applications. Everything else
/// (below 1000, 1015, the reserved 1016–2999, 5000 and above) is a protocol error.
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A Close frame without a code (the answer to a Close that gave none).
pub fn empty_close_frame() -> Vec<u8> {
    vec![0x80 | OP_CLOSE, 0]
}

/// A whole close frame (code and a short reason), as bytes.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    // Control frames carry at most 125 bytes: the code and 123 of reason.
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason.as_bytes()[..cut];
    let (h, n) = frame_header(OP_CLOSE, 2 + reason.len());
    let mut out = Vec::with_capacity(n + 2 + reason.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
    out
}

/// A client frame as a browser would send it (masked), for the tests.
#[cfg(test)]
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], mask);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;
    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    #[derive(Debug, PartialEq)]
    enum Got {
        Text(String),
        Binary,
        Ping(Vec<u8>),
        Pong,
        Close(Option<u16>),
    }

    fn run(d: &mut Decoder, bytes: &[u8]) -> (Vec<Got>, Result<(), Violation>) {
        let mut got = Vec::new();
        let mut input = bytes.to_vec();
        let r = d.feed(&mut input, MAX, |m| {
            got.push(match m {
                Incoming::Text(t) => Got::Text(t.to_owned()),
                Incoming::Binary => Got::Binary,
                Incoming::Ping(p) => Got::Ping(p.to_vec()),
                Incoming::Pong => Got::Pong,
                Incoming::Close(c) => Got::Close(c),
            });
            true
        });
        (got, r)
    }

    #[test]
    fn whole_frames_back_to_back() {
        let mut bytes = client_frame(true, OP_TEXT, b"{\"type\":\"ping\"}", MASK);
        bytes.extend(client_frame(true, OP_PING, b"hi", MASK));
        bytes.extend(client_frame(
            true,
            OP_TEXT,
            "é".repeat(100).as_bytes(),
            MASK,
        ));
        let mut d = Decoder::default();
        let (got, r) = run(&mut d, &bytes);
        assert_eq!(r, Ok(()));
        assert_eq!(
            got,
            vec![
                Got::Text("{\"type\":\"ping\"}".into()),
                Got::Ping(b"hi".to_vec()),
                Got::Text("é".repeat(100)),
            ]
        );
        assert!(!d.is_holding());
        assert_eq!(d.held(), 0, "nothing kept between reads");
    }

    #[test]
    fn frames_cut_anywhere_come_out_the_same() {
        let long = "x".repeat(70_000 - 100);
        let mut bytes = client_frame(true, OP_TEXT, b"first", MASK);
        bytes.extend(client_frame(
            true,
            OP_TEXT,
            long.as_bytes()[..300].as_ref(),
            MASK,
        ));
        bytes.extend(client_frame(false, OP_TEXT, b"frag", MASK));
        bytes.extend(client_frame(true, OP_PONG, b"", MASK));
        bytes.extend(client_frame(true, OP_CONTINUATION, b"mented", MASK));
        bytes.extend(client_frame(true, OP_CLOSE, &1000u16.to_be_bytes(), MASK));
        let want = vec![
            Got::Text("first".into()),
            Got::Text(long[..300].into()),
            Got::Pong,
            Got::Text("fragmented".into()),
            Got::Close(Some(1000)),
        ];
        for cut in 0..bytes.len() {
            let mut d = Decoder::default();
            let (mut got, r1) = run(&mut d, &bytes[..cut]);
            assert_eq!(r1, Ok(()));
            let (more, r2) = run(&mut d, &bytes[cut..]);
            assert_eq!(r2, Ok(()));
            got.extend(more);
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(d.held(), 0);
        }
    }

    #[test]
    fn violations_close_with_the_right_code() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Unmasked.
            (vec![0x81, 0x02, b'h', b'i'], 1002),
            // Reserved bit (no extension was negotiated).
            (vec![0xC1, 0x80, 0, 0, 0, 0], 1002),
            // Reserved opcode.
            (client_frame(true, 0x3, b"", MASK), 1002),
            // Fragmented control frame.
            (client_frame(false, OP_PING, b"", MASK), 1002),
            // Control frame over 125 bytes.
            (client_frame(true, OP_PING, &[0u8; 126], MASK), 1002),
            // Continuation without a start.
            (client_frame(true, OP_CONTINUATION, b"x", MASK), 1002),
            // Not UTF-8.
            (client_frame(true, OP_TEXT, &[0xff, 0xfe], MASK), 1007),
            // Too large: refused from the header alone.
            (
                client_frame(true, OP_TEXT, &vec![b'a'; MAX + 1][..], MASK)[..14].to_vec(),
                4009,
            ),
        ];
        for (bytes, code) in cases {
            let mut d = Decoder::default();
            let (_, r) = run(&mut d, &bytes);
            assert_eq!(r.map_err(|v| v.code(4009)), Err(code), "{bytes:x?}");
        }
        // Close codes RFC 6455 §7.4 does not allow on the wire.
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let mut d = Decoder::default();
            let bytes = client_frame(true, OP_CLOSE, &code.to_be_bytes(), MASK);
            let (_, r) = run(&mut d, &bytes);
            assert_eq!(r.map_err(|v| v.code(4009)), Err(1002), "close code {code}");
        }
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999,
        ] {
            let mut d = Decoder::default();
            let bytes = client_frame(true, OP_CLOSE, &code.to_be_bytes(), MASK);
            let (got, r) = run(&mut d, &bytes);
            assert_eq!((got, r), (vec![Got::Close(Some(code))], Ok(())), "{code}");
        }
        // A fragmented message that grows past the limit.
        let mut d = Decoder::default();
        let mut bytes = client_frame(false, OP_TEXT, &vec![b'a'; MAX - 10][..], MASK);
        bytes.extend(client_frame(true, OP_CONTINUATION, &[b'a'; 11], MASK));
        let (_, r) = run(&mut d, &bytes);
        assert_eq!(r, Err(Violation::TooLarge));
    }

    #[test]
    fn frames_behind_a_stop_are_kept_for_the_next_call() {
        let mut bytes = client_frame(true, OP_TEXT, b"auth", MASK);
        bytes.extend(client_frame(true, OP_TEXT, b"sync", MASK));
        bytes.extend(client_frame(true, OP_CLOSE, &4000u16.to_be_bytes(), MASK));
        let mut d = Decoder::default();
        let mut first = Vec::new();
        d.feed(&mut bytes, MAX, |m| {
            if let Incoming::Text(t) = m {
                first.push(t.to_owned());
            }
            false
        })
        .unwrap();
        assert_eq!(first, vec!["auth".to_owned()]);
        assert!(d.has_input());
        let (got, r) = run(&mut d, &[]);
        assert_eq!(r, Ok(()));
        assert_eq!(got, vec![Got::Text("sync".into()), Got::Close(Some(4000))]);
        assert!(!d.has_input() && !d.is_holding());
    }

    #[test]
    fn bytes_read_before_are_parsed_first() {
        let mut bytes = client_frame(true, OP_TEXT, b"early", MASK);
        let tail = client_frame(true, OP_TEXT, b"late", MASK);
        bytes.extend_from_slice(&tail[..3]);
        let mut d = Decoder::with_input(&bytes);
        assert!(d.has_input());
        let (got, r) = run(&mut d, &[]);
        assert_eq!((got, r), (vec![Got::Text("early".into())], Ok(())));
        // The cut frame waits for the rest of its bytes, and no longer counts as unparsed.
        assert!(!d.has_input() && d.is_holding());
        let (got, _) = run(&mut d, &tail[3..]);
        assert_eq!(got, vec![Got::Text("late".into())]);
        assert!(!d.is_holding());
    }

    #[test]
    fn server_frames() {
        assert_eq!(
            frame_header(OP_TEXT, 5),
            ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        let (h, n) = frame_header(OP_TEXT, 300);
        assert_eq!(&h[..n], &[0x81, 126, 1, 44]);
        let (h, n) = frame_header(OP_BINARY, 70_000);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let c = close_frame(4008, "too slow");
        assert_eq!(&c[..4], &[0x88, 10, 0x0f, 0xa8]);
        assert_eq!(&c[4..], b"too slow");
        assert!(close_frame(1000, &"é".repeat(100)).len() <= 127);
    }
}
