//! Headless Chromium over WebDriver (chromedriver), for tests of a page: start it (or
//! skip outside CI when it is not installed), drive it, wait for what it shows, and save
//! a screenshot when a wait fails. The cashier page's tests (`browser.rs`) and HQ's
//! console's (`hq_console.rs`) both drive their pages with it.
//!
//! Needs Debian's `chromium` and `chromium-driver`, which `.ci/run` installs. Without
//! them a test fails under `CI=true` (a skipped proof is no proof) and, elsewhere,
//! prints a note and passes. Screenshots land in `target/browser-screenshots/`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::time::Instant;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest a page may take to show something: CI shares two cores among a browser, HQ
/// and an agent.
pub const WAIT: Duration = Duration::from_secs(15);
/// Chromium's first start creates a profile and is the slowest step by far.
const BROWSER_START_MAX: Duration = Duration::from_secs(60);
/// Between two looks at the page while waiting.
const POLL: Duration = Duration::from_millis(100);

fn save_png(test: &str, label: &str, png: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}-{label}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// chromedriver in a process group of its own: dropping this kills it and every
/// Chromium process it started, even when a test panics before closing the session.
#[derive(Debug)]
struct Driver {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits in i32"));
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Driver {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A browser tab, named after its test for screenshots.
#[derive(Debug)]
pub struct Page {
    pub client: Client,
    name: &'static str,
    // Dropped after `client`: the session goes before its driver.
    _driver: Driver,
}

/// Starts chromedriver and headless Chromium with a page of `viewport` (width, height),
/// or returns `None` (outside CI) when they are not installed.
pub async fn launch(name: &'static str, viewport: (u64, u64)) -> Option<Page> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if !missing.is_empty() {
        let what = format!(
            "{} not found; install Debian's `chromium` and `chromium-driver` (`.ci/run` does)",
            missing.join(" and ")
        );
        assert!(!in_ci(), "the browser test must run under CI=true: {what}");
        eprintln!("note: skipping browser test `{name}`: {what}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", dir.path().join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver")
    };
    let mut driver = Driver { child, url: format!("http://127.0.0.1:{port}"), dir };
    wait_until_ready(&mut driver).await;
    let profile = driver.dir.path().join("profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                // No network beyond loopback: without these Chromium keeps dialling out.
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--window-size={},{}", viewport.0, viewport.1),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
        "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
    });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    let mut builder = ClientBuilder::new(HttpConnector::new());
    let connect = builder.capabilities(caps).connect(&driver.url);
    let client = match tokio::time::timeout(BROWSER_START_MAX, connect).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("Chromium did not start: {e}\nchromedriver log:\n{}", driver.log_tail()),
        Err(_) => panic!("Chromium did not start within {BROWSER_START_MAX:?}\n{}", driver.log_tail()),
    };
    fit_viewport(&client, viewport).await;
    Some(Page { client, name, _driver: driver })
}

/// Sizes the window so that the page itself gets `viewport` (headless Chromium still
/// reserves room for its toolbars).
async fn fit_viewport(client: &Client, viewport: (u64, u64)) {
    let inner = || async {
        let v = client.execute("return [window.innerWidth, window.innerHeight]", vec![]).await.unwrap();
        (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
    };
    let (inner_w, inner_h) = inner().await;
    let (outer_w, outer_h) = client.get_window_size().await.unwrap();
    let width = viewport.0 + outer_w.saturating_sub(inner_w);
    let height = viewport.1 + outer_h.saturating_sub(inner_h);
    client.set_window_size(u32::try_from(width).unwrap(), u32::try_from(height).unwrap()).await.unwrap();
    assert_eq!(inner().await, viewport, "the page must get the whole viewport");
}

async fn wait_until_ready(driver: &mut Driver) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = driver.child.try_wait().unwrap() {
            panic!("chromedriver exited with {status}\n{}", driver.log_tail());
        }
        let ready = match http.get(format!("{}/status", driver.url)).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver not ready within {WAIT:?}\n{}", driver.log_tail());
        tokio::time::sleep(POLL).await;
    }
}

impl Page {
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format!("cannot open {url}: {e}")).await;
        }
    }

    pub async fn el(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => self.fail(format!("no element {css}: {e}")).await,
        }
    }

    pub async fn click(&self, css: &str) {
        if let Err(e) = self.el(css).await.click().await {
            self.fail(format!("cannot click {css}: {e}")).await;
        }
    }

    /// Replaces the field's text with `text`, as a person would type it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.el(css).await;
        if let Err(e) = async {
            el.clear().await?;
            el.send_keys(text).await
        }
        .await
        {
            self.fail(format!("cannot type into {css}: {e}")).await;
        }
    }

    /// Chooses `file` in a file input.
    pub async fn choose_file(&self, css: &str, file: &Path) {
        let el = self.el(css).await;
        if let Err(e) = el.send_keys(&file.display().to_string()).await {
            self.fail(format!("cannot choose {} in {css}: {e}", file.display())).await;
        }
    }

    /// The element's text as the page renders it, once `want` accepts it.
    pub async fn wait(&self, css: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match seen {
                Ok(text) if want(&text) => return text,
                _ if Instant::now() >= deadline => {
                    self.fail(format!("{css} did not {what} within {WAIT:?}; it shows {seen:?}")).await
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    pub async fn wait_present(&self, css: &str) {
        self.wait(css, "appear", |_| true).await;
    }

    /// Waits until `css` shows `needle`. Spaces compare as spaces whatever their kind:
    /// the pages group thousands with a narrow no-break space, which WebDriver may give
    /// back as it is or as a plain space.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let plain = |s: &str| s.replace(['\u{202f}', '\u{a0}'], " ");
        let wanted = plain(needle);
        self.wait(css, &format!("show {needle:?}"), |t| plain(t).contains(&wanted)).await
    }

    /// How many elements match `css`, once it is `n`.
    pub async fn wait_count(&self, css: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.client.find_all(Locator::Css(css)).await.map(|v| v.len());
            match found {
                Ok(k) if k == n => return,
                _ if Instant::now() >= deadline => {
                    self.fail(format!("expected {n} of {css} within {WAIT:?}, found {found:?}")).await
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// The value of a field (what was typed, or what the page left there).
    pub async fn value(&self, css: &str) -> String {
        self.el(css).await.prop("value").await.unwrap().unwrap_or_default()
    }

    /// Runs `script` (a function body; `return` its answer) in the page.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        match self.client.execute(script, vec![]).await {
            Ok(v) => v,
            Err(e) => self.fail(format!("script failed: {e}\n{script}")).await,
        }
    }

    /// A real double-click, as a mouse makes it: two presses 40 ms apart.
    pub async fn double_click(&self, css: &str) {
        let element = self.el(css).await;
        let press = |m: MouseActions| {
            m.then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
                .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT })
        };
        let mouse = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
            element,
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        let mouse = press(press(mouse).then(PointerAction::Pause { duration: Duration::from_millis(40) }));
        if let Err(e) = self.client.perform_actions(mouse).await {
            self.fail(format!("cannot double-click {css}: {e}")).await;
        }
    }

    pub async fn screenshot(&self, label: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        save_png(self.name, label, &png)
    }

    /// Panics with `why`, after saving the page as it is for whoever reads the failure.
    pub async fn fail(&self, why: String) -> ! {
        let shot = match self.client.screenshot().await {
            Ok(png) => save_png(self.name, "failure", &png).display().to_string(),
            Err(e) => format!("(no screenshot: {e})"),
        };
        panic!("{why}\npage: {shot}");
    }

    pub async fn close(self) {
        let Page { client, _driver, .. } = self;
        // Ending the session makes chromedriver quit Chromium; `_driver` then goes.
        let _ = tokio::time::timeout(WAIT, client.close()).await;
    }
}
