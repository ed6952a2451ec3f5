//! Property tests against the real server: proptest generates operation sequences, a small
//! model in this file says what must happen, and the server must agree on every step.
//! Each property runs a bounded number of cases (the server is a real process, and every
//! case does real HTTP).

mod common;

use std::collections::HashMap;

use chatnode_client::Client;
use chatnode_client::protocol::{Role, SendMessageRequest, User};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Sends with repeated `client_id`s, over REST, never create a second message: each repeat
/// returns the original (same id and seq, `created == false`), and the conversation holds
/// exactly one message per distinct `client_id`, with contiguous `seq`s.
#[test]
fn idempotent_sends() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    let (a, _au, _b, _bu, _) = rt.block_on(friends_with_direct(&server));
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    runner
        .run(
            &prop::collection::vec((0u8..6, "[a-z][a-z ]{0,11}"), 1..25),
            |sends| {
                case.set(case.get() + 1);
                let n = case.get();
                rt.block_on(async {
                    let g = group(&a, &format!("idem {n}"), &[]).await;
                    let mut first: HashMap<u8, (String, i64)> = HashMap::new();
                    for (key, body) in &sends {
                        let req = SendMessageRequest {
                            client_id: format!("case{n}-k{key}"),
                            body: body.clone(),
                            ..Default::default()
                        };
                        let (m, created) = a.send_message(&g.id, &req).await.unwrap();
                        match first.get(key) {
                            None => {
                                prop_assert!(created, "first use of a client_id creates");
                                first.insert(*key, (m.id.clone(), m.seq));
                            }
                            Some((id, seq)) => {
                                prop_assert!(!created, "a repeat never creates");
                                prop_assert_eq!((&m.id, m.seq), (id, *seq));
                            }
                        }
                    }
                    let history = a.messages(&g.id, None, Some(1), Some(200)).await.unwrap();
                    let seqs: Vec<i64> = history.messages.iter().map(|m| m.seq).collect();
                    // seq 1 is the "created the group" system message.
                    prop_assert_eq!(seqs, (2..2 + first.len() as i64).collect::<Vec<_>>());
                    Ok(())
                })
            },
        )
        .unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Op {
    SetRole {
        actor: usize,
        target: usize,
        admin: bool,
    },
    Remove {
        actor: usize,
        target: usize,
    },
    Transfer {
        actor: usize,
        target: usize,
    },
    Rename {
        actor: usize,
    },
    Invite {
        actor: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..4;
    prop_oneof![
        (who.clone(), who.clone(), any::<bool>()).prop_map(|(actor, target, admin)| Op::SetRole {
            actor,
            target,
            admin
        }),
        (who.clone(), who.clone()).prop_map(|(actor, target)| Op::Remove { actor, target }),
        (who.clone(), who.clone()).prop_map(|(actor, target)| Op::Transfer { actor, target }),
        who.clone().prop_map(|actor| Op::Rename { actor }),
        who.prop_map(|actor| Op::Invite { actor }),
    ]
}

/// The role rules of the contract, as a model: who may do what, and what changes.
#[derive(Debug, Default, Clone)]
struct Model {
    roles: HashMap<usize, Role>,
}

impl Model {
    /// The status the server must answer, applying the change when it succeeds.
    fn apply(&mut self, op: Op) -> u16 {
        let role = |m: &Model, u: usize| m.roles.get(&u).copied();
        match op {
            Op::Rename { actor } | Op::Invite { actor } => match role(self, actor) {
                None => 404,
                Some(Role::Member) => 403,
                Some(_) => {
                    if matches!(op, Op::Invite { .. }) {
                        201
                    } else {
                        200
                    }
                }
            },
            Op::SetRole {
                actor,
                target,
                admin,
            } => match (role(self, actor), role(self, target)) {
                (None, _) => 404,
                (Some(r), _) if r != Role::Owner => 403,
                (_, None) => 404,
                (_, Some(Role::Owner)) => 403,
                _ => {
                    self.roles
                        .insert(target, if admin { Role::Admin } else { Role::Member });
                    200
                }
            },
            Op::Remove { actor, target } => match (role(self, actor), role(self, target)) {
                (None, _) => 404,
                (_, None) => 404,
                (Some(Role::Owner), _) if actor == target => 403,
                (Some(_), _) if actor == target => {
                    self.roles.remove(&target);
                    204
                }
                (Some(Role::Owner), _) | (Some(Role::Admin), Some(Role::Member)) => {
                    self.roles.remove(&target);
                    204
                }
                _ => 403,
            },
            Op::Transfer { actor, target } => match role(self, actor) {
                None => 404,
                Some(r) if r != Role::Owner => 403,
                _ if actor == target => 400,
                _ => match role(self, target) {
                    None => 404,
                    Some(_) => {
                        self.roles.insert(actor, Role::Admin);
                        self.roles.insert(target, Role::Owner);
                        200
                    }
                },
            },
        }
    }
}

/// Random sequences of role operations by random actors: every answer matches the model, and
/// the group always has exactly one owner whose view agrees with the member list.
#[test]
fn role_rules() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start());
    // Four friends of person 0 (the creator of each group).
    let people: Vec<(Client, User)> = rt.block_on(async {
        let mut v = Vec::new();
        for name in ["p0", "p1", "p2", "p3"] {
            v.push(register(&server, name).await);
        }
        for i in 1..4 {
            befriend(&v[0].0, &v[0].1, &v[i].0, &v[i].1).await;
        }
        v
    });
    let mut runner = TestRunner::new(Config {
        cases: 20,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..14), |ops| {
            rt.block_on(async {
                let others: Vec<&User> = people[1..].iter().map(|(_, u)| u).collect();
                let g = group(&people[0].0, "roles", &others).await;
                let mut model = Model::default();
                model.roles.insert(0, Role::Owner);
                for i in 1..4 {
                    model.roles.insert(i, Role::Member);
                }
                for op in ops {
                    let want = model.apply(op);
                    let (client, path, method, body) = match op {
                        Op::SetRole {
                            actor,
                            target,
                            admin,
                        } => (
                            actor,
                            format!("/groups/{}/members/{}", g.id, people[target].1.id),
                            chatnode_client::Method::PATCH,
                            Some(
                                serde_json::json!({"role": if admin { "admin" } else { "member" }}),
                            ),
                        ),
                        Op::Remove { actor, target } => (
                            actor,
                            format!("/groups/{}/members/{}", g.id, people[target].1.id),
                            chatnode_client::Method::DELETE,
                            None,
                        ),
                        Op::Transfer { actor, target } => (
                            actor,
                            format!("/groups/{}/transfer", g.id),
                            chatnode_client::Method::POST,
                            Some(serde_json::json!({"user_id": people[target].1.id})),
                        ),
                        Op::Rename { actor } => (
                            actor,
                            format!("/groups/{}", g.id),
                            chatnode_client::Method::PATCH,
                            Some(serde_json::json!({"name": format!("renamed by {actor}")})),
                        ),
                        Op::Invite { actor } => (
                            actor,
                            format!("/groups/{}/invites", g.id),
                            chatnode_client::Method::POST,
                            None,
                        ),
                    };
                    let (status, v) = people[client].0.raw(method, &path, body).await.unwrap();
                    prop_assert_eq!(status, want, "{:?} → {}", op, v);
                    // Exactly one owner, and the server's member list is the model's.
                    let owner = model
                        .roles
                        .iter()
                        .find(|(_, r)| **r == Role::Owner)
                        .map(|(u, _)| *u)
                        .unwrap();
                    let members = people[owner].0.members(&g.id).await.unwrap().members;
                    prop_assert_eq!(members.iter().filter(|m| m.role == Role::Owner).count(), 1);
                    let server_roles: HashMap<String, Role> = members
                        .iter()
                        .map(|m| (m.user.id.clone(), m.role))
                        .collect();
                    let model_roles: HashMap<String, Role> = model
                        .roles
                        .iter()
                        .map(|(u, r)| (people[*u].1.id.clone(), *r))
                        .collect();
                    prop_assert_eq!(server_roles, model_roles);
                }
                Ok(())
            })
        })
        .unwrap();
}
