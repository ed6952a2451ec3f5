//! Every text frame a client can send on `/api/v1/ws`, through what the server runs on it
//! before anything touches the store or the hub: the 64 KiB bound, the first-frame `auth`
//! parse (its token checked by the real `Auth`), and `ws::decode` (the `ClientFrame` JSON,
//! conversation IDs, the message rules shared with REST, `since`, the error frame and its
//! `client_id`). Dispatch itself needs a live store and socket; the integration suites
//! (`bad_input.rs`, `delivery.rs`) drive it.
#![no_main]

use std::sync::LazyLock;

use chatnode_protocol::{
    ClientFrame, ErrorCode, MAX_MESSAGE_BODY, MAX_WS_FRAME, MessageKind, ServerFrame,
};
use chatnode_server::fuzzing::Auth;
use chatnode_server::fuzzing::domain::UserId;
use chatnode_server::fuzzing::ws::{Request, decode};
use libfuzzer_sys::fuzz_target;

const USER: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

static AUTH: LazyLock<Auth> =
    LazyLock::new(|| Auth::new(b"fuzz-secret-fuzz-secret-fuzz-secret!", 900, 1));

/// A normalized ID: what `domain::Id::parse` gives back (lower-case, hyphenated UUID).
fn is_normal_id(id: &str) -> bool {
    id.len() == 36
        && id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase() || c == '-')
}

fuzz_target!(|data: &[u8]| {
    // The codec (`ws::codec`, its own fuzz target) hands the gateway only UTF-8 text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Larger frames close the socket (4009) before any parsing.
    if text.len() > MAX_WS_FRAME {
        return;
    }
    // The first frame of a connection: only `auth` passes, and no token can be forged.
    if let Ok(ClientFrame::Auth { token }) = serde_json::from_str::<ClientFrame>(text) {
        assert!(
            AUTH.verify_access(&token).is_err(),
            "accepted a forged token: {token:?}"
        );
    }
    match decode(&UserId::trusted(USER), text) {
        Ok(Request::Ping) => {}
        Ok(Request::Send(m)) => {
            assert_eq!(m.sender_id, USER);
            assert!(is_normal_id(m.conversation_id.as_str()), "{m:?}");
            assert!((1..=128).contains(&m.client_id.len()), "{m:?}");
            assert!(
                m.client_id.bytes().all(|b| (0x21..0x7f).contains(&b)),
                "{m:?}"
            );
            assert!(
                m.body.len() <= MAX_MESSAGE_BODY && !m.body.contains('\0'),
                "{m:?}"
            );
            assert!(m.kind != MessageKind::System, "{m:?}");
            assert!(m.attachment_ids.len() <= 10, "{m:?}");
            assert_eq!(
                m.kind == MessageKind::Text,
                m.attachment_ids.is_empty(),
                "{m:?}"
            );
            if m.kind == MessageKind::Text {
                assert!(!m.body.trim().is_empty(), "{m:?}");
            }
            assert!(m.reply_to_seq.is_none_or(|s| s >= 1), "{m:?}");
        }
        Ok(
            Request::Typing {
                conversation_id, ..
            }
            | Request::Read {
                conversation_id, ..
            },
        ) => {
            assert!(is_normal_id(conversation_id.as_str()), "{conversation_id:?}");
        }
        Ok(Request::Sync { since }) => assert!(since >= 0),
        Ok(Request::View { conversation_id }) => {
            assert!(conversation_id.is_none_or(|c| is_normal_id(c.as_str())));
        }
        Err(refusal) => {
            let frame = refusal.frame();
            let ServerFrame::Error { code, .. } = &frame else {
                panic!("a refusal that is not an error frame: {frame:?}");
            };
            // Bad input is the client's fault: never reported as a server fault.
            assert_ne!(*code, ErrorCode::Internal);
            // Only codes of the closed list go out (`Unknown` is for decoding newer ones).
            assert_ne!(*code, ErrorCode::Unknown);
            // What the server sends back must encode, and decode as the same frame.
            let json = serde_json::to_string(&frame).expect("error frames encode");
            assert_eq!(
                serde_json::from_str::<ServerFrame>(&json).expect("and decode"),
                frame
            );
        }
    }
});
