//! Real headless Chromium, driven over WebDriver (chromedriver) with fantoccini.
//!
//! Each test gets its own chromedriver in a process group of its own, and each browser a fresh
//! profile directory; dropping the [`Driver`] ends that group, so nothing outlives a test.
//! Without `chromium`/`chromedriver` the tests print why and pass, unless
//! `BROWSER_TESTS=required` (as `.ci/run` sets), where that is a failure.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a test waits for the page to reach a state before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One browser test at a time: two cores do not run several Chromiums well.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn find(variable: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os(variable) {
        let explicit = PathBuf::from(explicit);
        return explicit.is_file().then_some(explicit);
    }
    names.iter().find_map(|name| on_path(name))
}

/// A message on the real standard error: the test harness does not capture it, so a skip is
/// seen in `cargo test` output.
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// chromedriver, started for one test, with the Chromium it drives.
pub struct Driver {
    process: Child,
    url: String,
    chromium: PathBuf,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Driver {
    /// `None` (after saying why) when Chromium or chromedriver is not installed.
    pub async fn start(test: &str) -> Option<Self> {
        let chromium = find(
            "CHROME_BIN",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        );
        let chromedriver = find("CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            let why = "chromium or chromedriver is not installed \
                       (Debian: apt-get install chromium chromium-driver; or set CHROME_BIN and CHROMEDRIVER)";
            if std::env::var("BROWSER_TESTS").as_deref() == Ok("required") {
                panic!("{test}: BROWSER_TESTS=required but {why}");
            }
            say(&format!("SKIPPED browser test {test}: {why}"));
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that ending it also ends the browsers it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", chromedriver.display()));
        let driver = Self {
            process,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(driver)
    }

    /// A fresh headless Chromium (its own profile) on `base`'s page for `user`.
    pub async fn browser(&self, base: &str, user: i64) -> Browser {
        self.browser_at(base, user, None, "en-US").await
    }

    /// A fresh headless Chromium whose preferred language is `language` (`ko-KR`), on `base`'s
    /// page for `user`.
    pub async fn browser_speaking(&self, base: &str, user: i64, language: &str) -> Browser {
        self.browser_at(base, user, None, language).await
    }

    /// A fresh headless Chromium on the page of waiting room `room` (`/?room=`) for `user`.
    pub async fn browser_in_room(&self, base: &str, user: i64, room: &str) -> Browser {
        self.browser_at(base, user, Some(room), "en-US").await
    }

    async fn browser_at(
        &self,
        base: &str,
        user: i64,
        room: Option<&str>,
        language: &str,
    ) -> Browser {
        static PROFILES: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "ticketing-browser-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile directory");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--window-size=1280,1000",
                    format!("--lang={language}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
                // What the page reads as `navigator.languages`, whatever the machine's locale.
                "prefs": { "intl.accept_languages": language },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        let browser = Browser {
            client,
            profile,
            base: base.to_string(),
            user,
            room: room.map(str::to_string),
        };
        browser.open().await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every browser it started.
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.process.wait();
    }
}

/// One person's browser.
pub struct Browser {
    pub client: Client,
    profile: PathBuf,
    base: String,
    pub user: i64,
    /// The waiting room of the page (`?room=`); `None` is `/`.
    room: Option<String>,
}

fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

impl Browser {
    /// Loads (or reloads) the page for this browser's user, in its room.
    pub async fn open(&self) {
        let url = match &self.room {
            Some(room) => format!("{}/?room={room}&user={}", self.base, self.user),
            None => format!("{}/?user={}", self.base, self.user),
        };
        self.client.goto(&url).await.expect("loading the page");
    }

    /// The waiting room of the page (`None`: `/`).
    pub fn room(&self) -> Option<&str> {
        self.room.as_deref()
    }

    /// Moves this tab to the page of `room` (`None`: `/`), as following a link would.
    pub async fn go_to_room(&mut self, room: Option<&str>) {
        self.room = room.map(str::to_string);
        self.open().await;
    }

    pub async fn find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// The visible text of the element with this `data-testid` ("" when absent or hidden).
    pub async fn text(&self, id: &str) -> String {
        match self.find(&testid(id)).await {
            Some(element) => element.text().await.unwrap_or_default(),
            None => String::new(),
        }
    }

    pub async fn visible(&self, id: &str) -> bool {
        match self.find(&testid(id)).await {
            Some(element) => element.is_displayed().await.unwrap_or(false),
            None => false,
        }
    }

    /// The text of the error box when it shows, for failure messages.
    pub async fn error(&self) -> Option<String> {
        if self.visible("error").await {
            Some(self.text("error").await)
        } else {
            None
        }
    }

    /// Waits until `probe` gives a value; fails with `what` and the page's error otherwise.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "user {}: timed out waiting for {what}; status {:?}, error shown: {:?}",
                    self.user,
                    self.text("queue-status").await,
                    self.error().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element with this `data-testid` is visible and returns it.
    pub async fn shown(&self, id: &str) -> Element {
        self.wait_for(&format!("{id} to show"), || async {
            let element = self.find(&testid(id)).await?;
            element
                .is_displayed()
                .await
                .unwrap_or(false)
                .then_some(element)
        })
        .await
    }

    /// Waits until the element with this `data-testid` is visible and enabled, then clicks it.
    pub async fn click(&self, id: &str) {
        let element = self
            .wait_for(&format!("{id} to be clickable"), || async {
                let element = self.find(&testid(id)).await?;
                let ready = element.is_displayed().await.unwrap_or(false)
                    && element.is_enabled().await.unwrap_or(false);
                ready.then_some(element)
            })
            .await;
        element
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {id}: {error}"));
    }

    /// Waits until the line's status (its `data-status`, the same in every language) is `status`.
    pub async fn wait_for_status(&self, status: &str) {
        self.wait_for(&format!("queue status {status}"), || async {
            let shown = self.find(&testid("queue-status")).await?;
            (shown.attr("data-status").await.ok()?.as_deref() == Some(status)).then_some(())
        })
        .await;
    }

    /// What a script on the page returns, as text ("" for anything else).
    pub async fn script_text(&self, script: &str) -> String {
        self.client
            .execute(script, vec![])
            .await
            .ok()
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// From an ACTIVE turn to the seat map of `performance` of `concert`.
    pub async fn open_seat_map(&self, concert: i64, performance: i64) {
        self.wait_for_status("ACTIVE").await;
        let concert = self
            .wait_for("the concert", || async {
                self.find(&format!(
                    "[data-testid=\"concert\"][data-concert-id=\"{concert}\"]"
                ))
                .await
            })
            .await;
        concert.click().await.expect("choosing the concert");
        let performance = self
            .wait_for("the performance", || async {
                self.find(&format!(
                    "[data-testid=\"performance\"][data-performance-id=\"{performance}\"]"
                ))
                .await
            })
            .await;
        performance.click().await.expect("choosing the performance");
        self.wait_for("the seat map", || async {
            self.find("[data-testid=\"seat\"]").await
        })
        .await;
    }

    pub async fn seat(&self, seat: i64) -> Element {
        self.wait_for(&format!("seat {seat}"), || async {
            self.find(&format!("[data-testid=\"seat\"][data-seat-id=\"{seat}\"]"))
                .await
        })
        .await
    }

    pub async fn seat_status(&self, seat: i64) -> String {
        self.seat(seat)
            .await
            .attr("data-status")
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The reservation ids the confirmation shows.
    pub async fn confirmed_reservations(&self) -> Vec<i64> {
        let confirmation = self.shown("confirmation").await;
        let mut ids = Vec::new();
        for element in confirmation
            .find_all(Locator::Css("[data-reservation-id]"))
            .await
            .expect("reservation ids")
        {
            let text = element.text().await.expect("reservation id text");
            ids.push(text.trim().parse().expect("a reservation id"));
        }
        ids
    }

    /// The queue token this tab keeps in sessionStorage for its room.
    pub async fn stored_token(&self) -> Option<String> {
        self.stored_token_of(self.room.as_deref()).await
    }

    /// The queue token this tab keeps in sessionStorage for `room` (`None` and `default`: the
    /// room default, under the key of the page before rooms).
    pub async fn stored_token_of(&self, room: Option<&str>) -> Option<String> {
        let key = match room {
            Some(room) if room != "default" => {
                format!("ticketing:user-{}:room-{room}:token", self.user)
            }
            _ => format!("ticketing:user-{}:token", self.user),
        };
        let value = self
            .client
            .execute(
                "return window.sessionStorage.getItem(arguments[0]);",
                vec![json!(key)],
            )
            .await
            .expect("reading sessionStorage");
        let stored = value.as_str()?;
        serde_json::from_str::<Option<String>>(stored)
            .ok()
            .flatten()
    }

    /// Saves a screenshot as `name`.png in `$BROWSER_SCREENSHOTS` when that is set (`make
    /// screenshots` sets it to docs/images).
    pub async fn screenshot(&self, name: &str) {
        let Some(directory) = std::env::var_os("BROWSER_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("a screenshot");
        let directory = Path::new(&directory);
        std::fs::create_dir_all(directory).expect("the screenshot directory");
        std::fs::write(directory.join(format!("{name}.png")), png).expect("saving the screenshot");
    }

    /// Ends the browser session (its profile directory goes when the value is dropped).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
