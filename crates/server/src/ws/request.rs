//! What a client frame asks for, decided without any state: [`decode`] parses one text frame
//! of an authenticated connection and checks everything that needs neither the store nor the
//! hub (its JSON shape, IDs, the message rules). The `ws_frame` fuzz target runs exactly this.

use chatnode_protocol::{ClientFrame, ServerFrame};

use crate::domain::{ConversationId, UserId};
use crate::error::{Error, error_frame};
use crate::store::NewMessage;

/// A client frame that passed every check that needs no state: its JSON shape, IDs
/// (normalized), the message rules.
#[doc(hidden)]
#[derive(Debug)]
pub enum Request {
    Ping,
    Send(NewMessage),
    Typing {
        conversation_id: ConversationId,
        typing: bool,
    },
    Read {
        conversation_id: ConversationId,
        seq: i64,
    },
    Sync {
        since: i64,
    },
    /// `None`: nothing in view (also for anything that is not a conversation ID).
    View {
        conversation_id: Option<ConversationId>,
    },
}

/// Why [`decode`] refused a frame, and the `client_id` to answer with.
#[doc(hidden)]
#[derive(Debug)]
pub struct Refusal {
    pub client_id: Option<String>,
    pub error: Error,
}

impl Refusal {
    fn new(client_id: Option<String>, error: Error) -> Refusal {
        Refusal { client_id, error }
    }

    /// The `error` frame that answers the refused frame.
    pub fn frame(&self) -> ServerFrame {
        error_frame(self.client_id.clone(), &self.error)
    }
}

/// Parses and checks one text frame of an authenticated connection. No state and no I/O:
/// the store and the hub see only what passed, and the `ws_frame` fuzz target runs exactly
/// this.
#[doc(hidden)]
pub fn decode(user_id: &UserId, text: &str) -> Result<Request, Refusal> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(f) => f,
        Err(e) => {
            let err = Error::bad_request(format!("invalid frame: {e}"));
            return Err(Refusal::new(client_id_of(text), err));
        }
    };
    let conversation =
        |id: &str| ConversationId::parse(id, "conversation").map_err(|e| Refusal::new(None, e));
    match frame {
        ClientFrame::Ping => Ok(Request::Ping),
        ClientFrame::Auth { .. } => Err(Refusal::new(
            None,
            Error::bad_request("this connection is already authenticated"),
        )),
        ClientFrame::Send {
            conversation_id,
            client_id,
            body,
            kind,
            attachment_ids,
            reply_to_seq,
        } => crate::messages::new_message(
            user_id,
            &conversation_id,
            &client_id,
            &body,
            kind,
            attachment_ids.as_deref(),
            reply_to_seq,
        )
        .map(Request::Send)
        .map_err(|e| Refusal::new(Some(client_id), e)),
        ClientFrame::Typing {
            conversation_id,
            typing,
        } => Ok(Request::Typing {
            conversation_id: conversation(&conversation_id)?,
            typing,
        }),
        ClientFrame::Read {
            conversation_id,
            seq,
        } => Ok(Request::Read {
            conversation_id: conversation(&conversation_id)?,
            seq,
        }),
        ClientFrame::Sync { since } if since < 0 => Err(Refusal::new(
            None,
            Error::invalid("since", "since must not be negative"),
        )),
        ClientFrame::Sync { since } => Ok(Request::Sync { since }),
        // What this client shows: push notifications skip it. Only the user's own
        // conversations count; anything else is treated as "nothing in view".
        ClientFrame::View { conversation_id } => Ok(Request::View {
            conversation_id: conversation_id
                .and_then(|c| ConversationId::parse(&c, "conversation").ok()),
        }),
    }
}

/// Best effort: the `client_id` of a frame that failed to parse fully, for the error reply.
pub(crate) fn client_id_of(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("client_id")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatnode_protocol::ErrorCode;

    const CONV: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

    fn refused(text: &str) -> (Option<String>, ErrorCode) {
        match decode(&UserId::trusted("u"), text).map_err(|r| r.frame()) {
            Err(ServerFrame::Error {
                client_id, code, ..
            }) => (client_id, code),
            other => panic!("{text}: expected an error frame, got {other:?}"),
        }
    }

    #[test]
    fn decode_checks_everything_that_needs_no_state() {
        assert!(matches!(
            decode(&UserId::trusted("u"), r#"{"type":"ping"}"#),
            Ok(Request::Ping)
        ));
        let send = format!(
            r#"{{"type":"send","conversation_id":"{}","client_id":"c1","body":"hi"}}"#,
            CONV.to_uppercase()
        );
        match decode(&UserId::trusted("u"), &send) {
            Ok(Request::Send(m)) => {
                assert_eq!(
                    (m.conversation_id.as_str(), m.client_id.as_str()),
                    (CONV, "c1")
                );
            }
            other => panic!("{other:?}"),
        }
        // Refusals carry the client_id when there is one, even from a frame that did not parse.
        assert_eq!(
            refused(r#"{"type":"send","client_id":"c2","body":1}"#),
            (Some("c2".into()), ErrorCode::InvalidRequest)
        );
        let blank =
            format!(r#"{{"type":"send","conversation_id":"{CONV}","client_id":"c3","body":" "}}"#);
        assert_eq!(refused(&blank).0.as_deref(), Some("c3"));
        assert_eq!(
            refused(r#"{"type":"sync","since":-1}"#).1,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refused(r#"{"type":"auth","token":"t"}"#).1,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refused(r#"{"type":"typing","conversation_id":"x","typing":true}"#).1,
            ErrorCode::NotFound
        );
        assert!(matches!(
            decode(
                &UserId::trusted("u"),
                r#"{"type":"view","conversation_id":"not-an-id"}"#
            ),
            Ok(Request::View {
                conversation_id: None
            })
        ));
    }
}
