//! `cairn ct verify` against a running log grown across several tile boundaries (full and
//! partial data tiles, a partial level-1 tile): it passes with an older checkpoint, and fails
//! clearly on a tampered data tile, a tampered issuer, a forked older checkpoint and a wrong key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtServer;
use cairn_ct::key_file::load_or_generate;
use cairn_ct::verify::{VerifyError, VerifyOptions, verify_log};
use cairn_tlog::audit::AuditError;
use cairn_tlog::checkpoint::{Checkpoint, sign_checkpoint};
use cairn_tlog::note::{Ed25519NoteKey, NoteError};
use common::{ORIGIN, Pki, base_url, chain_body, client, log_config, server_config};

async fn grow(c: &reqwest::Client, base: &str, pki: &Pki, from: usize, to: usize) {
    let url = format!("{base}/ct/v1/add-chain");
    let mut tasks = Vec::new();
    for i in from..to {
        let leaf = pki.leaf(&format!("v{i}.example"), (2030, 6, 1), false, i % 2 == 0);
        let (c, url, body) = (c.clone(), url.clone(), chain_body(&pki.chain(&leaf, false)));
        tasks.push(tokio::spawn(async move {
            let r = c.post(&url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn verify_passes_on_a_grown_log_and_names_what_was_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let mut cfg = log_config(dir.path(), &pki);
    cfg.period_ms = 50;
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    let base = base_url(server.local_addr());
    let c = client();

    grow(&c, &base, &pki, 0, 300).await;
    let old = c
        .get(format!("{base}/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // 3 full data tiles and a partial one of 50; the level-1 tile is partial (width 3).
    let size = 256 * 3 + 50;
    grow(&c, &base, &pki, 300, size).await;

    let opts = VerifyOptions {
        url: format!("{base}/"),
        old_checkpoint: Some(old.clone()),
        ..Default::default()
    };
    let report = verify_log(&opts).await.unwrap();
    assert_eq!(report.origin, ORIGIN);
    assert_eq!(report.size, size as u64);
    assert_eq!(report.signatures, ["RFC 6962", "Ed25519", "ML-DSA-44"]);
    assert_eq!(report.consistent_with, Some(300));
    // 4 data + 4 level-0 tiles + the partial level-1 tile.
    assert_eq!(report.tiles, 9);
    assert!(
        report
            .to_string()
            .starts_with(&format!("OK {ORIGIN} size {size} root "))
    );

    // A forked older checkpoint, signed with the log's own key: consistency fails.
    let key = load_or_generate(&cfg.key_file).unwrap();
    let forked = sign_checkpoint(
        &key,
        &Checkpoint {
            origin: ORIGIN.into(),
            size: 300,
            root: [0x42; 32],
        },
        1,
    )
    .unwrap();
    let err = verify_log(&VerifyOptions {
        old_checkpoint: Some(forked),
        ..opts.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Audit(AuditError::Inconsistent { size: 300 })
        ),
        "{err}"
    );

    // A pinned Ed25519 key that is not the log's: the note signature is missing.
    let stranger = Ed25519NoteKey::generate().unwrap().vkey(ORIGIN);
    let err = verify_log(&VerifyOptions {
        vkeys: vec![stranger],
        ..opts.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&err, VerifyError::Note(NoteError::Missing(n)) if n == ORIGIN),
        "{err}"
    );

    // One changed byte inside a certificate of data tile 1 (as a CDN or disk might serve it).
    // The server keeps the gzip form of the full tiles it has served, so the changed disk is
    // served by a fresh server (as after a restart, or by a CDN reading the files).
    server.shutdown().await;
    let tile = dir.path().join("data/tile/data/001");
    let original = std::fs::read(&tile).unwrap();
    let mut bad = original.clone();
    bad[100] ^= 0x01;
    std::fs::write(&tile, &bad).unwrap();
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    let opts = VerifyOptions {
        url: format!("{}/", base_url(server.local_addr())),
        ..opts
    };
    let err = verify_log(&opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the entries of data tile tile/data/001 do not hash to level-0 tile tile/0/001"
    );
    std::fs::write(&tile, &original).unwrap();
    server.shutdown().await;
    let server = CtServer::start(&server_config(cfg.clone())).await.unwrap();
    let opts = VerifyOptions {
        url: format!("{}/", base_url(server.local_addr())),
        ..opts
    };
    verify_log(&opts).await.unwrap();

    // An issuer served with other content.
    let issuers: Vec<_> = std::fs::read_dir(dir.path().join("data/issuer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    std::fs::write(&issuers[0], b"not the issuer").unwrap();
    let err = verify_log(&opts).await.unwrap_err();
    assert!(matches!(err, VerifyError::Issuer(_)), "{err}");

    // Not a URL.
    assert!(matches!(
        verify_log(&VerifyOptions {
            url: "ct.example/log".into(),
            ..Default::default()
        })
        .await,
        Err(VerifyError::BadUrl(_))
    ));
    server.shutdown().await;
}
