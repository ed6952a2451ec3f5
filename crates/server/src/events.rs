//! Durable events: what a committed store transaction hands on for delivery.
//!
//! The store writes each event into its `events` table (its key is the event's `stream_pos`)
//! and, after the commit, passes the list to its [`EventSink`](crate::store::EventSink): the
//! hub delivers them, the cluster relays them to the other nodes, the notifier turns messages
//! into pushes. This module holds only the data, so that none of those depends on another to
//! name it; it must not depend on the store, the hub or the cluster.

use std::sync::Arc;

use bytes::Bytes;

/// What a durable event is, so consumers (the notifier, the cluster) need not read its JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Message,
    MessageUpdated,
    MessageDeleted,
    Read,
    ConversationUpdated,
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
    FriendRequest,
    FriendRequestRemoved,
    FriendAdded,
    FriendRemoved,
    Reaction,
    Notification,
}

impl EventKind {
    /// The kind of a stored frame's `type`.
    pub fn of(frame: &chatnode_protocol::ServerFrame) -> Option<EventKind> {
        use chatnode_protocol::ServerFrame as F;
        Some(match frame {
            F::Message { .. } => EventKind::Message,
            F::MessageUpdated { .. } => EventKind::MessageUpdated,
            F::MessageDeleted { .. } => EventKind::MessageDeleted,
            F::Read { .. } => EventKind::Read,
            F::ConversationUpdated { .. } => EventKind::ConversationUpdated,
            F::MemberAdded { .. } => EventKind::MemberAdded,
            F::MemberRemoved { .. } => EventKind::MemberRemoved,
            F::MemberUpdated { .. } => EventKind::MemberUpdated,
            F::FriendRequest { .. } => EventKind::FriendRequest,
            F::FriendRequestRemoved { .. } => EventKind::FriendRequestRemoved,
            F::FriendAdded { .. } => EventKind::FriendAdded,
            F::FriendRemoved { .. } => EventKind::FriendRemoved,
            F::Reaction { .. } => EventKind::Reaction,
            F::Notification { .. } => EventKind::Notification,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::MessageUpdated => "message.updated",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::Read => "read",
            EventKind::ConversationUpdated => "conversation.updated",
            EventKind::MemberAdded => "member.added",
            EventKind::MemberRemoved => "member.removed",
            EventKind::MemberUpdated => "member.updated",
            EventKind::FriendRequest => "friend.request",
            EventKind::FriendRequestRemoved => "friend.request.removed",
            EventKind::FriendAdded => "friend.added",
            EventKind::FriendRemoved => "friend.removed",
            EventKind::Reaction => "reaction",
            EventKind::Notification => "notification",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::Message,
            EventKind::MessageUpdated,
            EventKind::MessageDeleted,
            EventKind::Read,
            EventKind::ConversationUpdated,
            EventKind::MemberAdded,
            EventKind::MemberRemoved,
            EventKind::MemberUpdated,
            EventKind::FriendRequest,
            EventKind::FriendRequestRemoved,
            EventKind::FriendAdded,
            EventKind::FriendRemoved,
            EventKind::Reaction,
            EventKind::Notification,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A committed durable event, as the store hands it over for delivery.
#[derive(Clone, Debug)]
pub struct Durable {
    pub pos: i64,
    pub kind: EventKind,
    /// Set for events addressed to a conversation's members.
    pub conversation_id: Option<String>,
    /// Set for events addressed to one user.
    pub user_id: Option<String>,
    /// The message's `seq`, for `message` events.
    pub seq: Option<i64>,
    /// Who should get it (the conversation's members at commit, or the one user). Shared:
    /// every message of a batch to the same group carries the same list.
    pub recipients: Arc<[String]>,
    /// The frame's JSON, `stream_pos` included.
    pub json: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip_through_their_names() {
        for k in [
            EventKind::Message,
            EventKind::Read,
            EventKind::FriendRequestRemoved,
        ] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("typing"), None);
    }
}
