//! Accepted roots: a CCADB "All Certificate Records" CSV (a small fixture written by the test),
//! extra roots, Google's Merge Delay Monitor Root, and roots never removed automatically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtLog;
use cairn_ct::roots::{
    ACCEPTED_ROOTS_FILE, MERGE_DELAY_MONITOR_ROOT_PEM, RootSources, ccadb_roots, load, parse_csv,
};
use common::{Pki, log_config};

/// A CSV quoted as CCADB's export is (PEM fields spanning lines, commas inside quotes).
fn ccadb_csv(rows: &[(&str, &str, &str, &str)]) -> String {
    let mut out = String::from(
        "\"CA Owner\",\"Certificate Name\",\"Certificate Record Type\",\"Derived Trust Bits\",\
         \"Status of Root Cert\",\"X.509 Certificate (PEM)\"\r\n",
    );
    for (name, kind, bits, pem) in rows {
        out.push_str(&format!(
            "\"Example, Inc.\",\"{name}\",\"{kind}\",\"{bits}\",\
             \"Mozilla: Included; Chrome: Included\",\"{pem}\"\r\n"
        ));
    }
    out
}

#[test]
fn csv_parsing_follows_rfc_4180() {
    let rows = parse_csv("a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",,x\n").unwrap();
    assert_eq!(
        rows,
        vec![vec!["a", "b,c", "d\"e"], vec!["multi\nline", "", "x"]]
    );
    assert_eq!(parse_csv("\"open").map(|_| ()), None);
    assert_eq!(parse_csv("a\"b").map(|_| ()), None);
    assert_eq!(parse_csv("\"a\"b").map(|_| ()), None);
}

#[tokio::test]
async fn roots_come_from_ccadb_extra_roots_and_the_mmd_root_and_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let other = pki.other_root.pem();
    let inter = pki.inter.pem();
    // The CSV: one included server-auth root (other_root), one e-mail-only root and one
    // intermediate (both skipped).
    let csv = ccadb_csv(&[
        (
            "Other Root",
            "Root Certificate",
            "Server Authentication;Secure Email",
            &other,
        ),
        (
            "Mail Root",
            "Root Certificate",
            "Secure Email",
            &pki.root_pem(),
        ),
        (
            "Intermediate",
            "Intermediate Certificate",
            "Server Authentication",
            &inter,
        ),
    ]);
    let from_csv = ccadb_roots(&csv).unwrap();
    assert_eq!(from_csv, vec![pki.other_root.der().to_vec()]);
    assert!(ccadb_roots("\"Name\"\n\"x\"\n").is_err(), "no PEM column");

    let mut cfg = log_config(dir.path(), &pki);
    std::fs::write(dir.path().join("ccadb.csv"), &csv).unwrap();
    cfg.ccadb_csv = Some(dir.path().join("ccadb.csv"));
    let log = CtLog::start(cfg.clone()).await.unwrap();
    // Extra root (roots/root.pem) + CSV root + Merge Delay Monitor Root.
    let leaf = pki.leaf("a.example", (2030, 6, 1), false, false);
    log.submit(&pki.chain(&leaf, false), false).await.unwrap();
    log.shutdown().await;
    drop(log);
    let mmd = cairn_pki::pem_certificates(MERGE_DELAY_MONITOR_ROOT_PEM)
        .unwrap()
        .remove(0);
    let accepted = || {
        let text = std::fs::read_to_string(cfg.data_dir.join(ACCEPTED_ROOTS_FILE)).unwrap();
        cairn_pki::pem_certificates(&text).unwrap()
    };
    let first = accepted();
    assert_eq!(first.len(), 3);
    assert!(first.contains(&mmd));
    assert!(first.contains(&pki.other_root.der().to_vec()));
    assert!(first.contains(&pki.root.der().to_vec()));

    // The next CSV and the roots folder drop roots: they stay accepted.
    std::fs::write(dir.path().join("ccadb.csv"), ccadb_csv(&[])).unwrap();
    std::fs::remove_file(dir.path().join("roots/root.pem")).unwrap();
    let roots = load(&RootSources {
        dir: Some(&cfg.roots_dir),
        ccadb_csv: cfg.ccadb_csv.as_deref(),
        merge_delay_monitor_root: false,
        data_dir: Some(&cfg.data_dir),
    })
    .unwrap();
    assert_eq!(roots.len(), 3);
    let log = CtLog::start(cfg.clone()).await.unwrap();
    let leaf = pki.leaf("b.example", (2030, 6, 1), false, false);
    log.submit(&pki.chain(&leaf, false), false).await.unwrap();
    log.shutdown().await;
    assert_eq!(accepted(), first);
}
