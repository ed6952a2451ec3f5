//! A full disk: on a small file system made for the test (a tmpfs), sends get a clear
//! `unavailable` error while there is no room, nothing acked is lost (also across `kill -9`),
//! and the server takes messages again by itself once space returns. Needs root (to mount);
//! SKIPPED otherwise, and on PostgreSQL (whose disk is not the server's).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chatnode_client::ClientError;
use chatnode_client::protocol::ErrorCode;
use common::*;

/// A tmpfs of `mb` MiB, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(mb: u32) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("chatnode-full-{}", unique("d")));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Fills the file system with a junk file until it is full; returns the file.
fn fill(disk: &Path) -> PathBuf {
    use std::io::Write;
    let junk = disk.join("junk");
    let mut f = std::fs::File::create(&junk).expect("junk file");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
    junk
}

#[tokio::test]
async fn a_full_disk_refuses_sends_clearly_loses_nothing_and_recovers() {
    if std::env::var("CHATNODE_TEST_PG").is_ok_and(|v| !v.is_empty()) {
        println!("SKIPPED disk_full: the PostgreSQL suite's disk is the database server's");
        return;
    }
    let Some(disk) = SmallDisk::mount(48) else {
        println!("SKIPPED disk_full: cannot mount a tmpfs (needs root)");
        return;
    };
    let mut server =
        TestServer::start_with_files(&["--min-free-disk", "0"], &[], &[(disk.path(), "")]).await;
    let (a, au, _b, _bu, conv) = friends_with_direct(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    let mut acked: Vec<String> = Vec::new();
    for i in 0..20 {
        let body = format!("before {i}");
        ws.send_message(&conv.id, &format!("a{i}"), &body)
            .await
            .unwrap();
        acked.push(body);
    }

    let junk = fill(disk.path());
    // Sends go on until the database cannot grow; then every refusal is `unavailable`.
    let filler = "x".repeat(8 * 1024);
    let mut refused = None;
    for i in 0..20_000 {
        let body = format!("full {i} {filler}");
        match ws.send_message(&conv.id, &format!("f{i}"), &body).await {
            Ok(_) => acked.push(body),
            Err(ClientError::Frame { code, message, .. }) => {
                refused = Some((code, message));
                break;
            }
            Err(e) => panic!("send {i}: {e}"),
        }
    }
    let (code, message) = refused.expect("the disk never filled");
    assert_eq!(code, ErrorCode::Unavailable, "{message}");
    assert!(message.contains("disk is full"), "{message}");
    // REST says the same, with 503; the server itself is fine.
    let err = a
        .send_text(&conv.id, "rest-full", "hello")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), Some(ErrorCode::Unavailable))
    );
    assert!(server.client().healthz().await.is_ok());

    // Space comes back: sends work again without a restart.
    std::fs::remove_file(&junk).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    loop {
        let body = format!("after {i}");
        match ws.send_message(&conv.id, &format!("r{i}"), &body).await {
            Ok(_) => {
                acked.push(body);
                break;
            }
            Err(ClientError::Frame {
                code: ErrorCode::Unavailable,
                ..
            }) => {
                assert!(Instant::now() < deadline, "sends did not resume");
                tokio::time::sleep(Duration::from_millis(200)).await;
                i += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }

    // Nothing acked is lost, even across kill -9.
    server.restart().await;
    let c = server.client();
    c.login(&au.username, PASSWORD).await.unwrap();
    let mut bodies = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .messages(&conv.id, None, Some(after), Some(200))
            .await
            .unwrap();
        let Some(last) = page.messages.last() else {
            break;
        };
        after = last.seq;
        bodies.extend(page.messages.into_iter().map(|m| m.body));
    }
    for body in &acked {
        assert!(
            bodies.contains(body),
            "acked message lost: {}",
            &body[..body.len().min(40)]
        );
    }
    drop(server);
}
