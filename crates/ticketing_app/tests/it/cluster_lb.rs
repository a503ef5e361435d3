//! Three real `ticketing` processes on a Redis Cluster of the test's own, behind HAProxy: one
//! line and one budget for all, no seat sold twice, one place per user whichever instance is
//! reached, an instance killed mid-load costs only its in-flight requests, and a cluster master
//! killed gives 503 with Retry-After, then recovery by itself.
//!
//! Needs `haproxy` and `redis-server` (`.ci/run` installs them); without them the test says so
//! and passes, unless `CLUSTER_TESTS=required`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ticketing_testkit::TestDatabase;

const ADMIN_TOKEN: &str = "cluster-test-admin-token-of-32-chars-or-more";
const RATE: u64 = 50;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Redis Cluster of three masters on free ports, removed when dropped.
struct OwnCluster {
    ports: Vec<u16>,
    dir: PathBuf,
}

impl OwnCluster {
    fn start() -> Self {
        let ports = vec![free_port(), free_port(), free_port()];
        let dir = std::env::temp_dir().join(format!(
            "ticketing-cluster-{}",
            ticketing_testkit::unique_suffix()
        ));
        let cluster = Self { ports, dir };
        cluster.script("up");
        cluster
    }

    fn script(&self, action: &str) {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        let status = Command::new(repository().join("scripts/redis-cluster.sh"))
            .arg(action)
            .env("REDIS_CLUSTER_PORTS", ports.join(" "))
            .env("REDIS_CLUSTER_DIR", &self.dir)
            .stdout(Stdio::null())
            .status()
            .expect("scripts/redis-cluster.sh runs");
        assert!(status.success(), "redis-cluster.sh {action}");
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn redis_cli(&self, port: u16, arguments: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(arguments)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// The port of the master serving `key`'s slot.
    fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = self
            .redis_cli(self.ports[0], &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap();
        // `cluster nodes`: "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <state>
        // <slot ranges...>"
        let nodes = self.redis_cli(self.ports[0], &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = fields[1]
                .split('@')
                .next()
                .and_then(|address| address.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap();
            for range in &fields[8..] {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(low), Ok(high)) = (low.parse::<u16>(), high.parse::<u16>()) {
                    if (low..=high).contains(&slot) {
                        return port;
                    }
                }
            }
        }
        panic!("no master serves slot {slot}");
    }

    fn kill(&self, port: u16) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{port}.pid"))).unwrap();
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
    }

    /// Returns once nothing accepts connections at `port` any more (a killed node's process
    /// is gone).
    fn wait_until_down(&self, port: u16) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "node {port} still answers after kill -9"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn restart(&self, port: u16) {
        let node_dir = self.dir.join(port.to_string());
        let status = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
            ])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .arg("--cluster-config-file")
            .arg(node_dir.join("nodes.conf"))
            .arg("--dir")
            .arg(&node_dir)
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--pidfile")
            .arg(self.dir.join(format!("{port}.pid")))
            .arg("--logfile")
            .arg(self.dir.join(format!("{port}.log")))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // Clean-up must not panic (a panic in drop hides the test's own outcome).
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        let _ = Command::new(repository().join("scripts/redis-cluster.sh"))
            .arg("down")
            .env("REDIS_CLUSTER_PORTS", ports.join(" "))
            .env("REDIS_CLUSTER_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One `ticketing serve` process.
struct Instance {
    port: u16,
    child: Child,
}

impl Instance {
    fn start(database_url: &str, cluster_urls: &str, prefix: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketing"))
            .arg("serve")
            .env("APP_CONFIG_DIR", repository().join("config"))
            .env("APP_ENV", "test")
            .env("DATABASE_URL", database_url)
            .env("REDIS_CLUSTER_URLS", cluster_urls)
            .env("APP__REDIS__KEY_PREFIX", prefix)
            .env("APP__SERVER__PORT", port.to_string())
            .env("APP__SERVER__TRUSTED_PROXIES", "127.0.0.1")
            .env("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "0")
            .env("APP__QUEUE__ADMIT_PER_SECOND", RATE.to_string())
            .env("APP__QUEUE__MAX_ACTIVE", "100000")
            .env("APP__ADMIN__TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the ticketing binary starts");
        Self { port, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HAProxy in front of the instances, health-checking `/readyz`, the same instances unchecked
/// as backups (so that with Redis down everywhere they still answer what they can).
struct Balancer {
    port: u16,
    dir: PathBuf,
}

impl Balancer {
    fn start(instances: &[Instance]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "ticketing-haproxy-{}",
            ticketing_testkit::unique_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut servers = String::new();
        for (index, instance) in instances.iter().enumerate() {
            servers += &format!(
                "    server app{index} 127.0.0.1:{} check inter 500ms fall 2 rise 1\n",
                instance.port
            );
        }
        for (index, instance) in instances.iter().enumerate() {
            servers += &format!(
                "    server app{index}b 127.0.0.1:{} backup\n",
                instance.port
            );
        }
        let config = format!(
            "global\n    maxconn 5000\ndefaults\n    mode http\n    timeout connect 1s\n    \
             timeout client 30s\n    timeout server 30s\n    retries 3\n    option redispatch\n\
             frontend ticketing\n    bind 127.0.0.1:{port}\n    option forwardfor\n    \
             default_backend instances\nbackend instances\n    balance roundrobin\n    \
             option httpchk GET /readyz\n    http-check expect status 200\n    \
             option allbackups\n{servers}"
        );
        std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
        let status = Command::new("haproxy")
            .arg("-f")
            .arg(dir.join("haproxy.cfg"))
            .arg("-p")
            .arg(dir.join("haproxy.pid"))
            .arg("-D")
            .status()
            .expect("haproxy starts");
        assert!(status.success());
        Self { port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("haproxy.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_a_cluster_behind_a_balancer_share_one_line_and_survive_faults() {
    if !(installed("haproxy") && installed("redis-server")) {
        assert_ne!(
            std::env::var("CLUSTER_TESTS").as_deref(),
            Ok("required"),
            "haproxy and redis-server are required here"
        );
        eprintln!("skipped: needs haproxy and redis-server (apt-get install haproxy redis-server)");
        return;
    }
    let cluster = OwnCluster::start();
    let db = TestDatabase::with_demo_data().await;
    let prefix = format!("lb-{}", ticketing_testkit::unique_suffix());
    let mut instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(db.url(), &cluster.urls(), &prefix))
        .collect();
    let balancer = Balancer::start(&instances);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    while client
        .get(balancer.url("/readyz"))
        .send()
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stack came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth(ADMIN_TOKEN).send();
    let enter = |user: Option<i64>| {
        let request = client.post(balancer.url("/api/queue"));
        match user {
            Some(user) => request.json(&json!({ "userId": user })).send(),
            None => request.send(),
        }
    };

    // One place per user, whichever instance the balancer picks.
    let mut tokens = std::collections::HashSet::new();
    for _ in 0..6 {
        tokens.insert(json(enter(Some(42)).await.unwrap()).await["token"].clone());
    }
    assert_eq!(tokens.len(), 1, "one place per user across instances");

    // One budget for all: paused, 700 enter; resumed, 10 s admit RATE/s all instances together.
    let paused = admin(
        client
            .patch(balancer.url("/api/admin/queue"))
            .json(&json!({"paused": true})),
    )
    .await
    .unwrap();
    assert_eq!(paused.status(), 200);
    let before: Value = json(
        admin(client.get(balancer.url("/api/admin/queue")))
            .await
            .unwrap(),
    )
    .await;
    let mut waiting: Vec<String> = Vec::new();
    for _ in 0..14 {
        // 50 people at a time, as a crowd arrives through a balancer.
        for entry in futures::future::join_all((0..50).map(|_| enter(None))).await {
            let body = json(entry.unwrap()).await;
            assert_eq!(body["status"], "WAITING", "{body}");
            waiting.push(body["token"].as_str().unwrap().to_string());
        }
    }
    admin(
        client
            .patch(balancer.url("/api/admin/queue"))
            .json(&json!({"paused": false})),
    )
    .await
    .unwrap();
    let resumed = Instant::now();
    // Waiting people poll (through any instance) so they stay in line.
    let poller = {
        let client = client.clone();
        let waiting = waiting.clone();
        let url = balancer.url("/api/queue");
        tokio::spawn(async move {
            for _ in 0..12 {
                for chunk in waiting.chunks(100) {
                    let polls = chunk
                        .iter()
                        .map(|token| client.get(&url).header("Queue-Token", token).send());
                    futures::future::join_all(polls).await;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    // A 10 s window in the steady state: the first moments after resuming may catch up on the
    // current second's budget (at most one second's worth), which is not what is measured.
    let active_at = |at: Duration| {
        let client = client.clone();
        let url = balancer.url("/api/admin/queue");
        async move {
            tokio::time::sleep(at.saturating_sub(resumed.elapsed())).await;
            let sent = resumed.elapsed();
            let body: Value = client
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let midpoint = (sent + resumed.elapsed()) / 2;
            (body["active"].as_u64().unwrap(), midpoint)
        }
    };
    let (active_from, from) = active_at(Duration::from_secs(2)).await;
    let (active_to, to) = active_at(Duration::from_secs(12)).await;
    let admitted = active_to - active_from;
    let expected = RATE as f64 * (to - from).as_secs_f64();
    // Never above the rate (the budget is one for all instances). Below it by a few percent:
    // a second's budget left after its last admission step is not carried over, about 3% with
    // three instances stepping every 100 ms, more when the machine is busy (8% seen here with
    // the crash tests running alongside).
    assert!(
        admitted as f64 <= expected * 1.05 + 1.0 && admitted as f64 >= expected * 0.85,
        "admitted {admitted} in {:?}, {expected:.0} at the configured rate",
        to - from
    );
    let _ = before;
    poller.await.unwrap();

    // Racing holds through the balancer: no seat held twice.
    let active: Vec<String> = waiting[..20].to_vec();
    let holds = (0..1500).map(|i| {
        let token = active[i % active.len()].clone();
        client
            .post(balancer.url("/api/reservations"))
            .header("Queue-Token", token)
            .json(&json!({"userId": 1 + (i % 500) as i64, "concertId": 1, "performanceId": 119, "seatId": 1 + (i % 150) as i64}))
            .send()
    });
    let mut held = 0;
    for response in futures::future::join_all(holds).await {
        match response.unwrap().status().as_u16() {
            200 => held += 1,
            // Taken, or not yet admitted; 503 is the fast refusal of an instance whose database
            // pool is saturated by the race (shed, nothing changed).
            409 | 403 | 503 => {}
            other => panic!("a hold answered {other}"),
        }
    }
    assert!(held > 0 && held <= 150, "{held} holds of 150 seats");
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM (SELECT seat_no FROM reservations WHERE performance_id = 119 \
             AND status IN ('HELD', 'CONFIRMED') GROUP BY seat_no HAVING count(*) > 1) doubled"
        )
        .await,
        0,
        "no seat held twice"
    );

    // An instance killed mid-load: only its in-flight requests may fail; nobody loses a place.
    let still_waiting = &waiting[600..];
    let load = {
        let client = client.clone();
        let url = balancer.url("/api/concerts/1/performances/119/seats");
        let token = active[0].clone();
        tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..20 {
                let batch = (0..50).map(|_| client.get(&url).header("Queue-Token", &token).send());
                for response in futures::future::join_all(batch).await {
                    if response.map_or(true, |r| r.status() != 200) {
                        failed += 1;
                    }
                }
            }
            failed
        })
    };
    // Into the load (20 batches of 50, a few seconds on two cores), so that the instance dies
    // with requests in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    instances[1].kill();
    let failed = load.await.unwrap();
    assert!(
        failed <= 50,
        "{failed} of 1000 requests failed when one instance died"
    );
    for token in still_waiting.iter().take(20) {
        let polled = client
            .get(balancer.url("/api/queue"))
            .header("Queue-Token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(polled.status(), 200, "a waiting person kept their place");
    }

    // The master of the line's slot killed: 503 with Retry-After where Redis is needed, admitted
    // people keep browsing; restarted, the service recovers by itself.
    let master = cluster.master_of(&format!("{{{prefix}}}"));
    cluster.kill(master);
    cluster.wait_until_down(master);
    let refused = enter(None).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let browsing = client
        .get(balancer.url("/api/concerts"))
        .header("Queue-Token", &active[1])
        .send()
        .await
        .unwrap();
    assert_eq!(browsing.status(), 200, "fail static through the balancer");
    cluster.restart(master);
    let down_since = Instant::now();
    loop {
        if enter(None).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            down_since.elapsed() < Duration::from_secs(30),
            "recovered by itself"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(instances);
}
