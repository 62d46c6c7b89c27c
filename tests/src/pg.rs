//! A throwaway PostgreSQL cluster for tests (issue #17's groundwork): `initdb` into a
//! temporary directory, the server on a free loopback port with trust authentication
//! for the role `kassa`, stopped and removed when dropped; it can be stopped and started
//! again on the same data, as an outage test needs. Debian's server binaries live in
//! `/usr/lib/postgresql/<version>/bin` (`.ci/run` installs the `postgresql` package);
//! run as root (CI), the server runs as the `postgres` system user, which refuses root.
//!
//! Outside CI a machine without PostgreSQL gets `None` and a note (the test passes
//! saying so); under `CI=true` a missing PostgreSQL fails the test: a skipped proof is
//! no proof.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped) test cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    pub port: u16,
    server: Option<Child>,
}

impl PgCluster {
    /// Initialises and starts a cluster; `None` (with a note) when PostgreSQL is not
    /// installed and this is not CI.
    pub fn start(test: &str) -> Option<PgCluster> {
        let Some(bin) = server_binaries() else {
            assert!(
                std::env::var("CI").is_err(),
                "{test} needs PostgreSQL's server (Debian's `postgresql`), which `.ci/run` installs"
            );
            eprintln!("note: {test} skipped: PostgreSQL's server is not installed here");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let owner = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .expect("the user database")
                .expect("Debian's `postgres` user, which the package creates");
            let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).expect("the cluster's directory");
            Some((uid, gid))
        } else {
            None
        };
        let port = free_port();
        let mut cluster = PgCluster { dir, bin, owner, port, server: None };
        let status = cluster
            .command("initdb")
            .args(["-D"])
            .arg(cluster.data())
            .args(["-U", "kassa", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed: {status}");
        cluster.resume();
        Some(cluster)
    }

    /// The URL to connect with (role `kassa`, database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://kassa@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates an empty database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
        self.psql(&format!("CREATE DATABASE {name}"));
        format!("postgres://kassa@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once (an immediate shutdown, SIGQUIT: every backend ends
    /// without a checkpoint, a crash as far as clients can tell, recovered from the WAL
    /// at the next start); the data stays for [`PgCluster::resume`].
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(server.id()).expect("a pid fits in i32"));
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT).is_err() {
                let _ = server.kill();
            }
            let _ = server.wait();
        }
    }

    /// Starts the server on the cluster's data and port, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.server = Some(server);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "kassa", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not answer within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs SQL through `psql` and returns what it printed (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on("postgres", sql)
    }

    /// [`PgCluster::psql`] on database `database`.
    pub fn psql_on(&self, database: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .arg(format!("postgres://kassa@127.0.0.1:{}/{database}", self.port))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `pg_dump` of database `database`: plain SQL, without owners or privileges, so
    /// that it loads into any cluster ([`PgCluster::restore`]).
    pub fn dump(&self, database: &str) -> String {
        let out = self
            .command("pg_dump")
            .arg(format!("postgres://kassa@127.0.0.1:{}/{database}", self.port))
            .args(["--no-owner", "--no-privileges", "--no-comments"])
            .output()
            .expect("pg_dump runs");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("a dump is text")
    }

    /// Loads `sql` (a [`PgCluster::dump`]) into database `database` through `psql`,
    /// stopping at the first error.
    pub fn restore(&self, database: &str, sql: &str) {
        use std::io::Write;
        let mut child = self
            .command("psql")
            .arg(format!("postgres://kassa@127.0.0.1:{}/{database}", self.port))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child.stdin.take().expect("piped").write_all(sql.as_bytes()).expect("psql reads the dump");
        let out = child.wait_with_output().expect("psql ends");
        assert!(out.status.success(), "restoring: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the cluster's binaries, as the cluster's owner.
    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        c
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs every other test of the calling test binary again, with HQ on PostgreSQL: a
/// throwaway cluster, and each [`crate::start_hq`] of the rerun a new database on it
/// ([`crate::TEST_DATABASE_VAR`]). Fails, showing the rerun's output, if any test fails
/// there. `this` is the calling test's name, left out of the rerun. Within a rerun (or a
/// whole run on PostgreSQL) it does nothing.
pub fn rerun_on_postgres(this: &str) {
    if std::env::var(crate::TEST_DATABASE_VAR).is_ok_and(|v| !v.is_empty()) {
        return;
    }
    let Some(pg) = PgCluster::start(this) else { return };
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args(["--skip", this])
        .env(crate::TEST_DATABASE_VAR, format!("postgres://kassa@127.0.0.1:{}/", pg.port))
        .output()
        .expect("the test binary runs again");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "with HQ on PostgreSQL:\n{said}");
    assert!(said.contains("test result: ok"), "with HQ on PostgreSQL, nothing ran:\n{said}");
    let made = pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'kassa\\_test\\_%'");
    assert_ne!(made, "0", "the rerun started no HQ on PostgreSQL:\n{said}");
}

/// The newest installed server's binaries (Debian's layout, or `initdb` on the PATH).
fn server_binaries() -> Option<PathBuf> {
    let debian = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address").port()
}
