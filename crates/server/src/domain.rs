//! Input parsed at the edge into types that cannot hold invalid values.
//!
//! Handlers turn request fields into these newtypes first; everything past the HTTP and
//! WebSocket layers takes the parsed types. Each error names the field at fault.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};

/// 3–32 characters: ASCII letters, digits, `_`, `.`, `-`. Case is kept for display; uniqueness
/// is case-insensitive (see [`Username::key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Username> {
        let ok_len = (3..=32).contains(&s.len());
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok_len || !ok_chars {
            return Err(Error::invalid(
                "username",
                "username must be 3-32 characters: letters, digits, '_', '.' or '-'",
            ));
        }
        Ok(Username(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The case-folded form that must be unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A plausible email address, stored lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email> {
        let s = s.trim();
        let invalid = || Error::invalid("email", "email must look like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(invalid());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels
                .iter()
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(invalid());
        }
        Ok(Email(s.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An E.164 phone number: `+` then 8–15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Phone> {
        let digits = s.strip_prefix('+').unwrap_or("");
        let ok = (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(Error::invalid(
                "phone",
                "phone must be in E.164 form, e.g. +14155550123",
            ));
        }
        Ok(Phone(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At least 10 characters, at most 256 bytes (argon2 does not need more, and a bound stops
/// hashing-cost abuse).
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Password> {
        if s.chars().count() < 10 {
            return Err(Error::invalid(
                "password",
                "password must be at least 10 characters",
            ));
        }
        if s.len() > 256 {
            return Err(Error::invalid(
                "password",
                "password must be at most 256 bytes",
            ));
        }
        Ok(Password(s.to_owned()))
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Free text with a length bound in characters, trimmed; control characters other than
/// newline and tab are refused.
pub fn text(field: &'static str, s: &str, min: usize, max: usize) -> Result<String> {
    let t = s.trim();
    let n = t.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(
            field,
            format!("{field} must be {min}-{max} characters"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(t.to_owned())
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;

pub fn display_name(s: &str) -> Result<String> {
    text("display_name", s, 1, MAX_DISPLAY_NAME)
}

pub fn bio(s: &str) -> Result<String> {
    text("bio", s, 0, 500)
}

pub fn group_name(s: &str) -> Result<String> {
    text("name", s, 1, 100)
}

pub fn description(s: &str) -> Result<String> {
    text("description", s, 0, 1000)
}

/// A client-chosen idempotency key: 1–128 printable ASCII characters.
pub fn client_id(s: &str) -> Result<String> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(Error::invalid(
            "client_id",
            "client_id must be 1-128 printable ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

/// A message body: not blank (for text), at most [`chatnode_protocol::MAX_MESSAGE_BODY`] bytes.
pub fn message_body(s: &str, allow_empty: bool) -> Result<String> {
    if s.len() > chatnode_protocol::MAX_MESSAGE_BODY {
        return Err(Error::invalid(
            "body",
            "message body is too long (max 16 KiB)",
        ));
    }
    if !allow_empty && s.trim().is_empty() {
        return Err(Error::invalid("body", "message body must not be empty"));
    }
    if s.chars().any(|c| c == '\0') {
        return Err(Error::invalid("body", "message body must not contain NUL"));
    }
    Ok(s.to_owned())
}

/// The ID of a stored object of kind `K`: [`UserId`], [`ConversationId`] (direct chats and
/// groups), [`SessionId`], [`MediaId`], [`FriendRequestId`]. IDs are UUIDs on this server,
/// kept in their normalized form (lower-case, hyphenated).
///
/// Made in one of two ways, both explicit: [`Id::parse`] for anything a client sent (HTTP
/// paths and bodies, WebSocket frames), or [`Id::trusted`] for an ID that comes from the
/// database, a verified token or another node of the cluster. The store takes these types,
/// so an ID that reaches it was checked at the edge; its queries bind `.as_str()`. Cheap to
/// clone (a shared string). The wire (`chatnode_protocol`) keeps plain strings.
pub struct Id<K> {
    id: Arc<str>,
    kind: PhantomData<fn() -> K>,
}

/// The kinds of [`Id`] (types with no values: they only tell IDs apart).
pub mod kind {
    pub enum User {}
    pub enum Conversation {}
    pub enum Session {}
    pub enum Media {}
    pub enum FriendRequest {}
    pub enum Report {}
    pub enum Webhook {}
}

pub type UserId = Id<kind::User>;
/// A direct conversation or a group.
pub type ConversationId = Id<kind::Conversation>;
/// A login session (what a refresh token and the access tokens issued with it belong to).
pub type SessionId = Id<kind::Session>;
pub type MediaId = Id<kind::Media>;
pub type FriendRequestId = Id<kind::FriendRequest>;
pub type ReportId = Id<kind::Report>;
pub type WebhookId = Id<kind::Webhook>;

impl<K> Id<K> {
    /// A client's ID, normalized. Anything that is not a UUID cannot name an object on this
    /// server, so it is "`what` not found" (`what` as the request names it: "member",
    /// "group", "friend request").
    pub fn parse(s: &str, what: &str) -> Result<Id<K>> {
        match uuid::Uuid::parse_str(s) {
            Ok(u) => Ok(Id::trusted(u.hyphenated().to_string())),
            Err(_) => Err(Error::not_found(what)),
        }
    }

    /// An ID that needs no checking: read from the database, from a verified token, or from
    /// another node. Never for what a client sent.
    pub fn trusted(id: impl Into<Arc<str>>) -> Id<K> {
        Id {
            id: id.into(),
            kind: PhantomData,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Id<K> {
        Id::trusted(self.id.clone())
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Id<K>) -> bool {
        self.id == other.id
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        &*self.id == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        &*self.id == *other
    }
}

impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<K> AsRef<str> for Id<K> {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl<K> std::fmt::Display for Id<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

impl<K> std::fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.id, f)
    }
}

pub fn limit(limit: Option<u32>) -> Result<i64> {
    match limit {
        None => Ok(chatnode_protocol::DEFAULT_LIMIT as i64),
        Some(n) if (1..=chatnode_protocol::MAX_LIMIT).contains(&n) => Ok(n as i64),
        Some(_) => Err(Error::invalid("limit", "limit must be 1-200")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_d", "A23456789012345678901234567890bc"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "has space", "émile", "a/b", "", &"x".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(
            Email::parse("Bob@Example.COM").unwrap().as_str(),
            "bob@example.com"
        );
        for bad in [
            "bob",
            "bob@",
            "@x.com",
            "bob@localhost",
            "a b@x.com",
            "bob@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Phone::parse("+14155550123").is_ok());
        for bad in [
            "14155550123",
            "+0123456789",
            "+1234",
            "+1415555012a",
            "+1234567890123456",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_uuids_normalized_or_not_found() {
        let id = UserId::parse("01890A5D-AC96-774B-BCCE-B302099A8057", "member").unwrap();
        assert_eq!(id.as_str(), "01890a5d-ac96-774b-bcce-b302099a8057");
        assert_eq!(id, UserId::trusted("01890a5d-ac96-774b-bcce-b302099a8057"));
        let e = ConversationId::parse("nope", "group").unwrap_err();
        assert_eq!(e.public().0, chatnode_protocol::ErrorCode::NotFound);
        assert_eq!(e.public().1, Error::not_found("group").public().1);
    }

    #[test]
    fn passwords_and_text() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough!").is_ok());
        assert!(Password::parse(&"x".repeat(300)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-secret").unwrap()),
            "Password(***)"
        );
        assert!(display_name("  ").is_err());
        assert_eq!(display_name(" Ann ").unwrap(), "Ann");
        assert!(display_name("a\u{7}b").is_err());
        assert!(client_id("abc-123").is_ok());
        assert!(client_id("has space").is_err());
        assert!(message_body(" ", false).is_err());
        assert!(message_body(&"x".repeat(16 * 1024 + 1), false).is_err());
    }
}

/// Largest reaction emoji, in bytes (UTF-8).
pub const MAX_EMOJI_BYTES: usize = 32;

/// A reaction: exactly one emoji, i.e. one grapheme cluster of at most [`MAX_EMOJI_BYTES`]
/// bytes whose first character is an emoji (😀, 🇫🇷, ❤, ❤️), a keycap (1️⃣) included. Plain
/// text ("a", "1", "ok") and several emoji at once are refused with `invalid_emoji`.
pub fn emoji(s: &str) -> Result<String> {
    use unicode_properties::{EmojiStatus, UnicodeEmoji};
    use unicode_segmentation::UnicodeSegmentation;
    let bad = || {
        Error::new(
            chatnode_protocol::ErrorCode::InvalidEmoji,
            "a reaction is one emoji",
        )
    };
    if s.is_empty() || s.len() > MAX_EMOJI_BYTES || s.graphemes(true).count() != 1 {
        return Err(bad());
    }
    let first = s.chars().next().ok_or_else(bad)?;
    let presentation = matches!(
        first.emoji_status(),
        EmojiStatus::EmojiPresentation
            | EmojiStatus::EmojiPresentationAndModifierBase
            | EmojiStatus::EmojiPresentationAndEmojiComponent
            | EmojiStatus::EmojiPresentationAndModifierAndEmojiComponent
    );
    let made_emoji = first.is_emoji_char()
        && s.chars()
            .any(|c| c == '\u{FE0F}' || c == '\u{20E3}' || c == '\u{200D}');
    // An emoji character shown as text by default (❤, ☺) is still one emoji; ASCII digits,
    // `#` and `*` are emoji only as keycaps.
    let plain_emoji = first.is_emoji_char() && !first.is_ascii();
    if presentation || made_emoji || plain_emoji {
        Ok(s.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod emoji_tests {
    use super::emoji;

    #[test]
    fn one_emoji_only() {
        for ok in ["👍", "👍🏽", "❤️", "❤", "🇫🇷", "1️⃣", "👩‍👩‍👧", "🏳️‍🌈", "😀"]
        {
            assert!(emoji(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "1", "ok", "👍👍", "é", "#", " 👍", "👍 "] {
            assert!(emoji(bad).is_err(), "{bad:?}");
        }
        assert!(emoji(&"👍".repeat(9)).is_err());
    }
}
