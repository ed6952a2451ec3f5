//! Every JSON request body of the HTTP API, through the server's own extractors
//! (`ApiJson`, `OptionalJson`: UTF-8 check, serde) and then the validation each handler runs
//! on it (the `domain` parsers, `new_message`, `push::validate_subscription`), in the order
//! the handler runs them. The checks are the server's functions; the sequence per handler
//! is restated here, since the handlers also need a live store.
//! Not covered: the bodies of `/users/me/password`, `/users/me/delete` and `/auth/logout`
//! (crate-private types of plain strings; their one check, `Password::parse`, runs here for
//! `register`).
#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use chatnode_protocol::{self as p, ErrorCode};
use chatnode_server::fuzzing::hash_refresh_token;
use chatnode_server::fuzzing::domain::{self, Email, MediaId, Password, Phone, UserId, Username};
use chatnode_server::fuzzing::{Error, Result};
use chatnode_server::fuzzing::new_message;
use chatnode_server::fuzzing::{ApiJson, OptionalJson};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

fn request(body: &[u8]) -> Request {
    Request::builder()
        .method("POST")
        .uri("/api/v1/x")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request")
}

/// A refusal of bad input is a 4xx in the contract's shape, never a server fault.
fn client_error(e: Error) {
    let (code, message) = e.public();
    assert!(
        code != ErrorCode::Internal,
        "bad input gave a 500: {message}"
    );
    assert!((400..500).contains(&code.status()), "{code:?}");
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    match RT.block_on(ApiJson::<T>::from_request(request(body), &())) {
        Ok(ApiJson(v)) => Some(v),
        Err(e) => {
            client_error(e);
            None
        }
    }
}

fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Option<T> {
    match RT.block_on(OptionalJson::<T>::from_request(request(body), &())) {
        Ok(OptionalJson(v)) => Some(v),
        Err(e) => {
            client_error(e);
            None
        }
    }
}

fn check<T>(r: Result<T>) -> Option<T> {
    r.map_err(client_error).ok()
}

const ME: &str = "01890a5d-ac96-774b-bcce-b302099a8057";
const CONV: &str = "01890a5d-ac96-774b-bcce-b302099a8058";

/// `POST /auth/register`.
fn register(r: p::RegisterRequest) -> Result<()> {
    let username = Username::parse(&r.username)?;
    assert!(username.key().len() == r.username.len());
    let email = r
        .email
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Email::parse)
        .transpose()?;
    if let Some(e) = &email {
        assert!(e.as_str().contains('@') && e.as_str().len() <= 254);
    }
    r.phone
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Phone::parse)
        .transpose()?;
    Password::parse(&r.password)?;
    if let Some(n) = r.display_name.as_deref().filter(|n| !n.trim().is_empty()) {
        domain::display_name(n)?;
    }
    Ok(())
}

/// `PATCH /users/me`.
fn update_profile(r: p::UpdateProfileRequest) -> Result<()> {
    r.display_name
        .as_deref()
        .map(domain::display_name)
        .transpose()?;
    r.bio.as_deref().map(domain::bio).transpose()?;
    r.avatar_media_id
        .as_deref()
        .map(|id| MediaId::parse(id, "media"))
        .transpose()?;
    Ok(())
}

/// `POST /groups`.
fn create_group(r: p::CreateGroupRequest) -> Result<()> {
    let members = r.member_ids.unwrap_or_default();
    if members.len() > 1000 {
        return Err(Error::invalid("member_ids", "at most 1000 members at once"));
    }
    let name = domain::group_name(&r.name)?;
    assert!(!name.is_empty() && name.chars().count() <= 100);
    r.description
        .as_deref()
        .map(domain::description)
        .transpose()?;
    r.avatar_media_id
        .as_deref()
        .map(|id| MediaId::parse(id, "media"))
        .transpose()?;
    for m in &members {
        UserId::parse(m, "user")?;
    }
    Ok(())
}

/// `PATCH /groups/{id}`.
fn update_group(r: p::UpdateGroupRequest) -> Result<()> {
    r.name.as_deref().map(domain::group_name).transpose()?;
    r.description
        .as_deref()
        .map(domain::description)
        .transpose()?;
    r.avatar_media_id
        .as_deref()
        .map(|id| MediaId::parse(id, "media"))
        .transpose()?;
    Ok(())
}

/// `POST /groups/{id}/members`.
fn add_members(r: p::UserIdsRequest) -> Result<()> {
    if r.user_ids.is_empty() || r.user_ids.len() > 1000 {
        return Err(Error::invalid(
            "user_ids",
            "user_ids must list 1-1000 users",
        ));
    }
    for u in &r.user_ids {
        UserId::parse(u, "user")?;
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Some(r) = json::<p::RegisterRequest>(data) {
        check(register(r));
    }
    if let Some(r) = json::<p::LoginRequest>(data) {
        // The handler only bounds the lengths before hashing; nothing can fail here.
        let _ = (r.login.len() > 254, r.password.len() > 256);
    }
    if let Some(r) = json::<p::RefreshRequest>(data) {
        assert_eq!(hash_refresh_token(&r.refresh_token).len(), 43);
    }
    if let Some(r) = json::<p::UpdateProfileRequest>(data) {
        check(update_profile(r));
    }
    if let Some(r) = json::<p::UserIdRequest>(data) {
        // open_direct, friend requests, transfer: one user ID.
        if let Some(id) = check(UserId::parse(&r.user_id, "user")) {
            assert_eq!(id.as_str().len(), 36);
        }
    }
    if let Some(r) = json::<p::UserIdsRequest>(data) {
        check(add_members(r));
    }
    if let Some(r) = json::<p::CreateGroupRequest>(data) {
        check(create_group(r));
    }
    if let Some(r) = json::<p::UpdateGroupRequest>(data) {
        check(update_group(r));
    }
    let _ = json::<p::RoleRequest>(data);
    let _ = optional_json::<p::CreateInviteRequest>(data);
    if let Some(r) = json::<p::SendMessageRequest>(data) {
        let sent = check(new_message(
            &UserId::trusted(ME),
            CONV,
            &r.client_id,
            &r.body,
            r.kind,
            r.attachment_ids.as_deref(),
            r.reply_to_seq,
        ));
        if let Some(m) = sent {
            assert!(m.body.len() <= p::MAX_MESSAGE_BODY && m.attachment_ids.len() <= 10);
        }
    }
    if let Some(r) = json::<p::EditMessageRequest>(data) {
        check(domain::message_body(&r.body, false));
    }
    let _ = json::<p::ReadRequest>(data);
    if let Some(r) = json::<p::PushSubscriptionRequest>(data) {
        let _ =
            chatnode_server::fuzzing::validate_subscription(&r.endpoint, &r.keys.p256dh, &r.keys.auth);
    }
    let _ = json::<p::PushUnsubscribeRequest>(data);
    let _ = optional_json::<p::MuteRequest>(data);
});
