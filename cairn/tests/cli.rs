//! The command line: config validation gives a one-line error for bad files, and the admin
//! command creates EAB keys in the CA's database.

use std::process::Command;

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn config_validate_accepts_the_sample_and_rejects_bad_files() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cairn.sample.toml");
    let out = cairn()
        .args(["config", "validate", sample])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:1\"\nsurprise = true\n",
    )
    .unwrap();
    let out = cairn()
        .args(["config", "validate"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("cairn: "), "{err}");
    assert!(
        err.contains("surprise"),
        "the error names the bad field: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = cairn()
        .args(["config", "validate", "/nonexistent/cairn.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn admin_creates_eab_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn()
        .args(["admin", "eab", "new", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("key_id: "), "{text}");
    let hmac = text
        .lines()
        .find_map(|l| l.strip_prefix("hmac_key: "))
        .expect("hmac key printed");
    assert_eq!(hmac.len(), 43, "32 bytes of base64url");
    assert!(dir.path().join("cairn.db").exists());

    // The HMAC key is sealed: no database file holds it.
    use base64::Engine;
    let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(hmac)
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file()
            && path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cairn.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(hmac.len()).any(|w| w == hmac),
                "{} holds the EAB HMAC key in plaintext",
                path.display()
            );
        }
    }
    // The data folder and what the command wrote are the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("cairn.db")), 0o600);
        assert_eq!(mode(&dir.path().join("eab-seal.key")), 0o600);
    }
}

#[test]
fn admin_eab_keys_and_accounts_carry_identifier_policies() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn()
        .args([
            "admin",
            "eab",
            "new",
            "--pre-validated",
            "*.Team-A.corp.example",
            "--allow",
            "10.20.0.0/16",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("identifier policy: *.team-a.corp.example (pre-validated), 10.20.0.0/16"),
        "{text}"
    );
    // A bad pattern: one line, nothing stored.
    let out = cairn()
        .args([
            "admin",
            "eab",
            "new",
            "--allow",
            "10.0.0.0/40",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.0/40"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // An unknown account: one line.
    let out = cairn()
        .args([
            "admin",
            "account",
            "policy",
            "--account",
            "nope",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no account nope"), "{err}");
}

#[test]
fn serve_refuses_a_bad_key_algorithm_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn()
        .args(["serve", "--key-algorithm", "dsa-1024", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key_algorithm"), "{err}");
}

#[test]
fn serve_refuses_a_malformed_weak_key_file_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blacklist.RSA-2048");
    std::fs::write(
        &list,
        "# RSA-2048\n0123456789abcdef0123\n0123456789abcdef012\n",
    )
    .unwrap();
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[ca]\nweak_key_files = [{:?}]\n",
            list.display().to_string()
        ),
    )
    .unwrap();
    let out = cairn()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cairn: "), "{err}");
    assert!(
        err.contains("weak_key_files") && err.contains("line 3"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
