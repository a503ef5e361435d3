//! A real OpenID Connect issuer for the end-to-end identity tests: the certified `oidc-provider`
//! package from npm, run with node (`tests/oidc-provider/provider.mjs`, nothing written here but
//! its configuration). Installed with `npm ci` from the committed lock file when missing.
//!
//! Each start makes new signing keys, so [`Issuer::rotate`] (a restart on the same address with
//! other key ids) is a key rotation at the issuer: the old keys are gone from its JWKS.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The public client the page signs in as (registered in `provider.mjs`).
pub const PAGE_CLIENT: &str = "ticketing-page";
/// The API's resource indicator, and the `aud` of its access tokens.
pub const AUDIENCE: &str = "urn:ticketing:api";
/// What the page asks for: an ID token and an access token for the API.
pub const PAGE_SCOPE: &str = "openid api";

/// One npm install at a time in this process: tests may start issuers in parallel.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn provider_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider"))
}

/// Installs `oidc-provider` from the lock file if it is not there yet.
fn install() -> Result<(), String> {
    let _turn = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = provider_dir();
    if dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .map_err(|error| format!("npm could not run: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm ci failed in {}: {status}", dir.display()))
    }
}

/// The issuer, running until dropped.
pub struct Issuer {
    process: Child,
    port: u16,
    redirect_uri: String,
}

impl Issuer {
    /// An issuer on loopback `port` signing with `keys` (ids `rsa-*`, `ec-*` or `ed-*`; the
    /// first signs), whose page client returns to `redirect_uri`. `None` (after saying why) when
    /// node or npm is missing, unless `BROWSER_TESTS=required`, where that is a failure.
    pub fn start_on(port: u16, keys: &[&str], redirect_uri: &str) -> Option<Self> {
        let missing = ["node", "npm"]
            .into_iter()
            .find(|tool| Command::new(tool).arg("--version").output().is_err());
        if let Some(tool) = missing {
            let why = format!("{tool} is not installed (Debian: apt-get install nodejs npm)");
            if std::env::var("BROWSER_TESTS").as_deref() == Ok("required") {
                panic!("BROWSER_TESTS=required but {why}");
            }
            eprintln!("SKIPPED identity end-to-end test: {why}");
            return None;
        }
        install().unwrap_or_else(|why| panic!("installing oidc-provider: {why}"));
        Some(Self {
            process: spawn(port, keys, redirect_uri),
            port,
            redirect_uri: redirect_uri.to_string(),
        })
    }

    /// Restarts the issuer on the same address with new keys named `keys`: the old keys are
    /// withdrawn (and its sessions forgotten).
    pub fn rotate(&mut self, keys: &[&str]) {
        stop(&mut self.process);
        self.process = spawn(self.port, keys, &self.redirect_uri);
    }
}

fn spawn(port: u16, keys: &[&str], redirect_uri: &str) -> Child {
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(provider_dir())
        .env("PORT", port.to_string())
        .env("KEYS", keys.join(","))
        .env("AUDIENCE", AUDIENCE)
        .env("REDIRECT_URI", redirect_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting node");
    let stdout = child.stdout.take().expect("the issuer's output");
    let mut output = BufReader::new(stdout);
    let mut first = String::new();
    // It prints `issuer <url>` once it listens; anything else (or nothing) is a failure.
    let read = output.read_line(&mut first);
    if read.is_err() || !first.starts_with("issuer ") {
        stop(&mut child);
        panic!("the issuer did not start on port {port}: {first:?}");
    }
    // The rest is read and dropped: with the pipe closed, its next notice would kill it.
    std::thread::spawn(move || std::io::copy(&mut output, &mut std::io::sink()));
    // The port may still be in TIME_WAIT for the client side only; the listener is up.
    std::thread::sleep(Duration::from_millis(50));
    child
}

fn stop(process: &mut Child) {
    let _ = process.kill();
    let _ = process.wait();
}

impl Drop for Issuer {
    fn drop(&mut self) {
        stop(&mut self.process);
    }
}
