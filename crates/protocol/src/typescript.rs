//! TypeScript declarations of the wire types, for the web client
//! (`web/src/lib/protocol.gen.ts`, committed).
//!
//! The declarations come from the same types the server and the Rust client (de)serialize,
//! through ts-rs's derive, which reads the serde attributes (`tag`, `rename`, `rename_all`,
//! `flatten`, and `skip_serializing_if` together with `default`), so they describe the JSON
//! that serde really produces: an `Option` field with `skip_serializing_if` is optional
//! (`name?: T`), one without is present and nullable (`name: T | null`). `i64` becomes
//! `number`: every integer on the wire (sequence numbers, stream positions, sizes) stays far
//! below 2^53.
//!
//! This module owns rendering only. The test `typescript_bindings_are_current` (below) fails
//! when the committed file differs from what the types render, and names [`REGENERATE`].

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};

use ts_rs::{Config, TS, TypeVisitor};

use crate::*;

/// Where the generated file lives, relative to the workspace root.
pub const GENERATED_PATH: &str = "web/src/lib/protocol.gen.ts";

/// The command that rewrites [`GENERATED_PATH`] from the types.
pub const REGENERATE: &str = "UPDATE_TS=1 cargo test -p chatnode-protocol typescript";

/// Collects the declaration of every named type reachable from the roots, once each, keyed by
/// TypeScript name (so the file's order does not depend on the order of the roots).
struct Collect {
    cfg: Config,
    seen: HashSet<TypeId>,
    decls: BTreeMap<String, String>,
}

impl TypeVisitor for Collect {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        // Only derived types have a declaration (and an output path); primitives, `Vec` and
        // `Option` are written inline where they are used.
        if T::output_path().is_none() || !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        let name = T::ident(&self.cfg);
        let mut decl = T::docs().unwrap_or_default();
        decl.push_str("export ");
        decl.push_str(&T::decl(&self.cfg));
        let previous = self.decls.insert(name.clone(), decl);
        assert!(
            previous.is_none(),
            "two protocol types are named {name} in TypeScript"
        );
        T::visit_dependencies(self);
    }
}

/// The whole generated file.
pub fn render() -> String {
    let mut c = Collect {
        cfg: Config::new().with_large_int("number"),
        seen: HashSet::new(),
        decls: BTreeMap::new(),
    };
    // The roots: every REST request and response body, the WebSocket frames, push payloads
    // and the error shape. Types they contain (User, Message, Media, ...) follow on their own.
    macro_rules! roots {
        ($($t:ty),* $(,)?) => { $( c.visit::<$t>(); )* };
    }
    roots!(
        // WebSocket
        ClientFrame,
        ServerFrame,
        // Errors
        ErrorBody,
        ErrorCode,
        // Accounts
        RegisterRequest,
        LoginRequest,
        AuthResponse,
        RefreshRequest,
        TokenPair,
        Me,
        UpdateProfileRequest,
        ChangePasswordRequest,
        ConfirmPasswordRequest,
        SessionList,
        UserList,
        // Friends and blocks
        UserIdRequest,
        FriendRequestList,
        FriendAdded,
        FriendList,
        BlockList,
        // Conversations and groups
        ConversationList,
        CreateGroupRequest,
        UpdateGroupRequest,
        GroupDirectory,
        MemberList,
        UserIdsRequest,
        RoleRequest,
        CreateInviteRequest,
        Invite,
        // Messages
        MessageList,
        SendMessageRequest,
        EditMessageRequest,
        DeleteMessageQuery,
        ReadRequest,
        ReadMarker,
        // Push and mute
        VapidPublicKey,
        PushSubscriptionRequest,
        PushUnsubscribeRequest,
        PushSubscriptionList,
        PushPayload,
        MuteRequest,
        MuteState,
        // Reactions and search
        ReactionUsersList,
        SearchResults,
        // Operators
        CreatedId,
        AdminUserList,
        SuspendRequest,
        ReportRequest,
        ReportList,
        ResolveReportRequest,
        AuditList,
        Stats,
        RegistrationInfo,
        CreateRegistrationInviteRequest,
        RegistrationInvite,
        RegistrationInviteList,
        UploadUsage,
        // Integrations
        CreateBotRequest,
        BotCreated,
        BotList,
        BotToken,
        CreateWebhookRequest,
        WebhookCreated,
        WebhookList,
        HookPost,
        HookAccepted,
        NotifyRequest,
        NotificationList,
        NotificationsReadRequest,
        ProviderList,
        OidcExchangeRequest,
    );

    let mut out = String::new();
    out.push_str(&format!(
        "// Generated from crates/protocol by `{REGENERATE}`. Do not edit:\n\
         // change the Rust types and regenerate. A test fails while this file is stale.\n\
         // ({GENERATED_PATH}; see crates/protocol/src/typescript.rs)\n"
    ));
    for decl in c.decls.values() {
        out.push('\n');
        out.push_str(decl);
        out.push('\n');
    }
    out.push_str(&close_codes());
    out.push_str(&format!(
        "\n/** Largest accepted message body, in bytes. */\n\
         export const MAX_MESSAGE_BODY = {MAX_MESSAGE_BODY};\n\
         \n/** Largest accepted WebSocket text frame, in bytes; larger ones close the socket with 4009. */\n\
         export const MAX_WS_FRAME = {MAX_WS_FRAME};\n"
    ));
    out
}

/// `close_code` as a TypeScript object and a union of its values.
fn close_codes() -> String {
    use close_code::*;
    let codes = [
        ("UNAUTHENTICATED", UNAUTHENTICATED),
        ("FORBIDDEN", FORBIDDEN),
        ("TOO_SLOW", TOO_SLOW),
        ("FRAME_TOO_LARGE", FRAME_TOO_LARGE),
        ("RATE_LIMITED", RATE_LIMITED),
        ("GOING_AWAY", GOING_AWAY),
        ("TRY_AGAIN_LATER", TRY_AGAIN_LATER),
    ];
    let mut out = String::from(
        "\n/** WebSocket close codes of the contract. */\nexport const CLOSE_CODE = {\n",
    );
    for (name, code) in codes {
        out.push_str(&format!("  {name}: {code},\n"));
    }
    out.push_str(
        "} as const;\n\nexport type CloseCode = (typeof CLOSE_CODE)[keyof typeof CLOSE_CODE];\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn generated_file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(GENERATED_PATH)
    }

    /// CI runs this: the committed file must be exactly what the types render.
    #[test]
    fn typescript_bindings_are_current() {
        let path = generated_file();
        let rendered = render();
        if std::env::var_os("UPDATE_TS").is_some_and(|v| !v.is_empty() && v != "0") {
            std::fs::write(&path, &rendered).expect("write the generated TypeScript");
            eprintln!("wrote {}", path.display());
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != rendered {
            let line = committed
                .lines()
                .zip(rendered.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(rendered.lines().count()));
            panic!(
                "{GENERATED_PATH} is stale: it no longer matches the protocol types (first \
                 difference at line {}). Regenerate it with\n\n    {REGENERATE}\n\nand commit it.",
                line + 1
            );
        }
    }

    #[test]
    fn the_error_code_union_lists_exactly_the_codes_the_server_sends() {
        let decl = ErrorCode::decl(&Config::new());
        for code in ErrorCode::ALL {
            assert!(
                decl.contains(&format!("\"{code}\"")),
                "{code} missing from {decl}"
            );
        }
        // `Unknown` (decoding only) is not in the union, and ALL has every other variant.
        assert!(!decl.contains("unknown"), "{decl}");
        assert_eq!(
            decl.matches('"').count(),
            2 * ErrorCode::ALL.len(),
            "{decl}"
        );
    }

    #[test]
    fn optionality_follows_serde() {
        let ts = render();
        // `Option` without skip_serializing_if: always present, may be null.
        assert!(ts.contains("reply_to_seq: number | null"), "{ts}");
        // `Option` with skip_serializing_if (and default): may be absent, never null. Each such
        // field says `#[ts(optional)]` (ts-rs alone would write `name?: T | null`); this
        // catches one that does not.
        assert!(ts.contains("peer?: User,"), "{ts}");
        let nullable_optional: Vec<&str> = ts
            .split("?: ")
            .skip(1)
            .zip(ts.split("?: "))
            .filter(|(ty, _)| {
                ty.split([',', ';'])
                    .next()
                    .is_some_and(|t| t.contains("| null"))
            })
            .map(|(_, before)| before.rsplit([' ', '\n']).next().unwrap_or(before))
            .collect();
        // MuteRequest.until: the contract documents null there.
        assert_eq!(
            nullable_optional,
            ["until"],
            "add #[ts(optional)] to these fields"
        );
        // Never bigint: JSON numbers are JavaScript numbers.
        assert!(!ts.contains("bigint"));
    }
}
