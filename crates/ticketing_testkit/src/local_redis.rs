//! A Redis server of a test's own, which the test may stop and start again: for fault tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process on a free port, with an append-only file in a directory of
/// its own, so data survives [`LocalRedis::restart`].
#[derive(Debug)]
pub struct LocalRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl LocalRedis {
    /// Starts one; panics with the install hint when `redis-server` is missing.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("ticketing-redis-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("a directory for the test's Redis");
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as with a
    /// server stuck in a long command or a swap storm.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal} the test's redis-server");
        }
    }

    /// Starts the server again on the same port and data, and waits until it answers.
    pub fn restart(&mut self) {
        self.start_server(&[]);
        let started = Instant::now();
        while !self.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the test's redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data, loading it `per_key` per key (Redis's testing
    /// setting `key-load-delay`, which applies to the RDB part of the append-only file: call
    /// `BGREWRITEAOF` first) and answering clients while it loads; returns as soon as it
    /// answers at all, which is `LOADING` until the data is in. [`LocalRedis::is_loaded`] tells
    /// when it is done.
    pub fn restart_loading_slowly(&mut self, per_key: Duration) {
        let delay = per_key.as_micros().to_string();
        self.start_server(&[
            "--key-load-delay",
            &delay,
            "--loading-process-events-interval-bytes",
            "1024",
        ]);
        let started = Instant::now();
        while !self.replies() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the test's redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers PING with PONG (not `LOADING`).
    pub fn is_loaded(&self) -> bool {
        self.answers()
    }

    fn start_server(&mut self, extra: &[&str]) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: apt-get install redis-server");
        self.child = Some(child);
    }

    /// Whether anything answers a PING, an error such as `LOADING` included. A loading server
    /// reads its sockets only now and then, hence the patient timeout.
    fn replies(&self) -> bool {
        match redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        {
            Ok(mut connection) => match redis::cmd("PING").query::<String>(&mut connection) {
                Ok(_) => true,
                Err(error) => !error.is_io_error(),
            },
            Err(error) => !error.is_io_error(),
        }
    }

    fn answers(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
