//! A cluster for tests: three real `chatnode` nodes sharing one PostgreSQL schema and a
//! private NATS server (`cluster("name")`), or `None` after printing SKIPPED and why.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatnode_client::Client;

use super::{PgSchema, TestServer};

pub const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// The documented bound for a dead node's users to show offline (NODE_TIMEOUT 12 s, checked
/// every second), plus slack for a loaded machine.
pub const OFFLINE_BOUND: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private nats-server on a free loopback port, killed on drop.
pub struct Nats {
    child: Option<Child>,
    port: u16,
}

impl Nats {
    pub fn start() -> Nats {
        let mut n = Nats {
            child: None,
            port: free_port(),
        };
        n.spawn();
        n
    }

    pub fn spawn(&mut self) {
        let port = self.port.to_string();
        // The port may be held a moment after a kill: retry until the server answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(NATS_SERVER)
                .args(["-a", "127.0.0.1", "-p", &port])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nats-server");
            let up = Instant::now() + Duration::from_secs(3);
            while Instant::now() < up {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Fields drop in order: the nodes first, then NATS, then the schema.
pub struct Cluster {
    pub nodes: Vec<TestServer>,
    pub nats: Nats,
    _schema: PgSchema,
}

/// Three nodes, or `None` (after printing why) when PostgreSQL or nats-server is missing.
pub async fn cluster(test: &str) -> Option<Cluster> {
    cluster_with(test, &[&[], &[], &[]]).await
}

/// One node per entry of `extra`, each started with those extra arguments (e.g. `--roles`).
pub async fn cluster_with(test: &str, extra: &[&[&str]]) -> Option<Cluster> {
    if !std::path::Path::new(NATS_SERVER).exists() {
        println!("SKIPPED cluster::{test}: {NATS_SERVER} is not installed");
        return None;
    }
    let Some(schema) = PgSchema::create() else {
        println!(
            "SKIPPED cluster::{test}: CHATNODE_TEST_PG is not set (the cluster needs PostgreSQL)"
        );
        return None;
    };
    let nats = Nats::start();
    let (db, nats_url) = (schema.url(), nats.url());
    let mut nodes: Vec<TestServer> = Vec::new();
    for more in extra {
        let mut args = vec![
            "--database-url",
            db.as_str(),
            "--nats-url",
            nats_url.as_str(),
        ];
        args.extend_from_slice(more);
        let secret = nodes.first().map(|n| n.data_dir());
        nodes.push(TestServer::start_node(&args, secret.as_deref()).await);
    }
    Some(Cluster {
        nodes,
        nats,
        _schema: schema,
    })
}

/// The same logged-in user, talking to another node.
pub fn on(node: &TestServer, c: &Client) -> Client {
    let other = Client::new(&node.url());
    other.set_tokens(
        c.access_token().expect("logged in"),
        c.refresh_token().expect("logged in"),
    );
    other
}
