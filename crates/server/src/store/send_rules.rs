//! The rules of a send, written once: who may post where, what a reply and attachments
//! must be, and whom a message mentions. Both ways of committing messages (the general SQL
//! path in `sql/messages.rs` and the SQLite writer thread in `sqlite_writer.rs`) gather the
//! same [`SendFacts`] with their own queries and hand them to [`decide`]; neither decides
//! anything itself. Nothing here does I/O.
//!
//! The order of the checks is part of the contract's answers: idempotency first (the caller
//! looks the `client_id` up before gathering facts: a retry gets its original message even if
//! the sender has since lost the right to post), then membership (404), blocks (403
//! `blocked`), friendship in direct chats (403 `not_friends`; a direct chat with a bot needs
//! none), the reply, then the attachments.

use std::sync::Arc;

use chatnode_protocol::{self as p, ErrorCode};

use super::{MediaRecord, NewMessage};
use crate::error::{Error, Result};

/// At most this many distinct `@names` of one message are looked up.
pub const MAX_MENTION_NAMES: usize = 50;

/// What the sender's membership of the conversation says (absent: not a member).
#[derive(Debug, Clone)]
pub struct ConversationFacts {
    pub direct: bool,
    pub sender_role: p::Role,
    /// A direct chat's other member, if they still are one.
    pub peer: Option<String>,
    /// Either of the two blocked the other.
    pub blocked: bool,
    pub friends: bool,
    /// Either of the two is a bot (a direct chat with a bot needs no friendship).
    pub with_bot: bool,
    /// Every member (for a direct chat: the sender and the peer).
    pub members: Arc<[String]>,
}

/// Everything [`decide`] needs about one send, gathered by the committing backend.
#[derive(Debug, Clone, Default)]
pub struct SendFacts {
    pub conversation: Option<ConversationFacts>,
    /// Whether `reply_to_seq` names a message of the conversation (None: no reply).
    pub reply_found: Option<bool>,
    /// One entry per `attachment_ids` entry, in order: the sender's upload with that ID.
    pub attachments: Vec<Option<MediaRecord>>,
    /// The members whose username was written as `@name` ([`mentioned_names`]):
    /// `(username_key, user_id)`.
    pub named_members: Vec<(String, String)>,
}

/// A send that may be written.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub members: Arc<[String]>,
    pub media: Vec<MediaRecord>,
    pub mentions: Vec<String>,
}

/// Applies the rules to the facts of one send. Every `Err` is a rule failure that must not
/// write anything.
pub fn decide(m: &NewMessage, f: SendFacts) -> Result<Accepted> {
    let conv = f
        .conversation
        .ok_or_else(|| Error::not_found("conversation"))?;
    if conv.direct && conv.peer.is_some() {
        if conv.blocked {
            return Err(Error::new(
                ErrorCode::Blocked,
                "you cannot message this person",
            ));
        }
        if !conv.friends && !conv.with_bot {
            return Err(Error::new(
                ErrorCode::NotFriends,
                "you can only message your friends",
            ));
        }
    }
    if f.reply_found == Some(false) {
        return Err(Error::invalid(
            "reply_to_seq",
            "reply_to_seq names no message of this conversation",
        ));
    }
    let mut media: Vec<MediaRecord> = Vec::with_capacity(f.attachments.len());
    for (id, rec) in m.attachment_ids.iter().zip(f.attachments) {
        if media.iter().any(|x| &x.id == id) {
            return Err(Error::invalid(
                "attachment_ids",
                "an attachment is listed twice",
            ));
        }
        let rec = rec.ok_or_else(|| Error::not_found("attachment"))?;
        if !fits(m.kind, &rec.kind) {
            return Err(Error::invalid(
                "attachment_ids",
                format!("a {} message cannot carry a {}", m.kind.as_str(), rec.kind),
            ));
        }
        media.push(rec);
    }
    let mentions = mentions(
        &m.body,
        m.kind,
        !conv.direct && conv.sender_role >= p::Role::Admin,
        &conv.members,
        &f.named_members,
    );
    Ok(Accepted {
        members: conv.members,
        media,
        mentions,
    })
}

/// Whether an upload of `media_kind` may ride on a message of `kind`.
fn fits(kind: p::MessageKind, media_kind: &str) -> bool {
    match kind {
        p::MessageKind::Image => media_kind == "image",
        p::MessageKind::Video => media_kind == "video",
        p::MessageKind::Audio => media_kind == "audio",
        _ => true,
    }
}

/// Can `c` be part of a username (see `domain::Username`)?
fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The lower-cased `@names` a body writes, in order, each once, at most
/// [`MAX_MENTION_NAMES`]: an `@` at the start of the body or after a character that cannot be
/// in a username, followed by username characters up to one that cannot be (so
/// `someone@bob.com` names nobody). A trailing `.` or `-` is punctuation, not part of the
/// name ("thanks @bob." names bob). `all` is among them when written.
pub fn mentioned_names(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in body.char_indices() {
        let starts = c == '@' && prev.is_none_or(|p| !username_char(p) && p != '@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &body[i + 1..];
        let len = rest
            .char_indices()
            .find(|(_, c)| !username_char(*c))
            .map_or(rest.len(), |(j, _)| j);
        let name = rest[..len].trim_end_matches(['.', '-']);
        if name.is_empty() || name.len() > 32 {
            continue;
        }
        let key = name.to_ascii_lowercase();
        if !out.contains(&key) {
            out.push(key);
            if out.len() == MAX_MENTION_NAMES {
                break;
            }
        }
    }
    out
}

/// Whom a message mentions: the members named with `@name`, and with `@all` (in a group,
/// from an admin or the owner) every member; in the order they are named, each once.
/// Only text messages mention (an attachment's caption too: any non-system kind).
pub fn mentions(
    body: &str,
    kind: p::MessageKind,
    may_mention_all: bool,
    members: &[String],
    named_members: &[(String, String)],
) -> Vec<String> {
    if kind == p::MessageKind::System || !body.contains('@') {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for name in mentioned_names(body) {
        if name == "all" && may_mention_all {
            for id in members {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
            continue;
        }
        if let Some((_, id)) = named_members.iter().find(|(k, _)| *k == name)
            && !out.contains(id)
        {
            out.push(id.clone());
        }
    }
    out
}

/// `mentions` as stored on the message row: space-separated IDs, NULL for none.
pub fn mentions_column(mentions: &[String]) -> Option<String> {
    (!mentions.is_empty()).then(|| mentions.join(" "))
}

/// The stored column back as a list.
pub fn parse_mentions(column: Option<&str>) -> Vec<String> {
    column
        .map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_a_boundary_before_the_at() {
        assert_eq!(mentioned_names("@Bob hi"), vec!["bob"]);
        assert_eq!(
            mentioned_names("hi @bob, and @carol!"),
            vec!["bob", "carol"]
        );
        assert!(mentioned_names("mail someone@bob.com").is_empty());
        assert_eq!(mentioned_names("thanks @bob."), vec!["bob"]);
        assert_eq!(mentioned_names("(@ann) @ann @ANN"), vec!["ann"]);
        assert_eq!(mentioned_names("@@bob"), Vec::<String>::new());
        assert_eq!(mentioned_names("é@bob"), vec!["bob"]);
        assert_eq!(mentioned_names("@all hands"), vec!["all"]);
        assert!(mentioned_names("@ alone").is_empty());
    }

    #[test]
    fn at_all_needs_the_right_to_use_it() {
        let members = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let named = vec![("bob".to_string(), "b".to_string())];
        assert_eq!(
            mentions("@all", p::MessageKind::Text, true, &members, &named),
            members
        );
        assert!(mentions("@all", p::MessageKind::Text, false, &members, &named).is_empty());
        assert_eq!(
            mentions(
                "@bob @nobody",
                p::MessageKind::Text,
                false,
                &members,
                &named
            ),
            vec!["b"]
        );
        assert!(mentions("@bob", p::MessageKind::System, true, &members, &named).is_empty());
    }

    #[test]
    fn the_stored_column_round_trips() {
        let m = vec!["x".to_string(), "y".to_string()];
        assert_eq!(parse_mentions(mentions_column(&m).as_deref()), m);
        assert_eq!(mentions_column(&[]), None);
        assert!(parse_mentions(None).is_empty());
    }
}
