//! A PostgreSQL cluster of a test's own, which the test may crash and start again: for fault
//! tests. As root it runs as the `postgres` user, as PostgreSQL requires.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An initdb'ed cluster on a free port, trust authentication, data in `/var/tmp`.
#[derive(Debug)]
pub struct LocalPostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|bin| bin.join("pg_ctl").exists())
        .expect("PostgreSQL server binaries are not installed: apt-get install postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl LocalPostgres {
    /// Creates and starts a cluster.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let dir =
            PathBuf::from("/var/tmp").join(format!("ticketing-pg-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&dir).expect("a directory for the test's PostgreSQL");
        let cluster = Self {
            port,
            dir,
            bin: binaries(),
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres"])
                .arg(&cluster.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the test's PostgreSQL directory");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
            ],
        );
        cluster.start_again();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, tool: &str, arguments: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let status = command
            .args(arguments)
            .current_dir(Path::new("/"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(status.success(), "{tool} {arguments:?} failed");
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Crashes the server (immediate shutdown: no checkpoint, as a power cut would).
    pub fn crash(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the server on the same data and port; waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .current_dir("/")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        } else {
            Command::new(&program)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
