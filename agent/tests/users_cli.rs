//! `kassa-agent users` as the README documents it, on a fresh install: the built
//! binary, a configuration whose data directory does not exist yet.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kassa-agent");

fn config(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("fresh").join("data");
    let path = dir.join("agent.toml");
    let text = format!(
        "store = 7\ndata_dir = {:?}\n[hq]\naddr = \"127.0.0.1:1\"\npki_dir = {:?}\n",
        data.display().to_string(),
        dir.join("pki").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], pin: &str) -> Output {
    let out = Command::new(BIN).args(args).env("KASSA_PIN", pin).output().expect("run kassa-agent");
    assert!(
        out.status.success(),
        "kassa-agent {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn users_add_works_as_the_readme_says_on_a_fresh_install() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let cfg = cfg.to_str().unwrap();
    assert!(!dir.path().join("fresh").exists());

    // The README's order: `--config` after the subcommand and its arguments.
    let out = run(&["users", "add", "anna", "--name", "Анна", "--role", "cashier", "--config", cfg], "1234");
    assert!(String::from_utf8_lossy(&out.stdout).contains("added anna"));
    assert!(dir.path().join("fresh/data/journal.sqlite").exists(), "the data directory is created");

    // The older order still works: `--config` before the subcommand.
    run(&["users", "--config", cfg, "add", "boss", "--name", "Босс", "--role", "manager"], "9999");

    let out = run(&["users", "list", "--config", cfg], "");
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("anna\tcashier\tАнна") && list.contains("boss\tmanager\tБосс"), "{list}");
}
