//! Shard lifecycle over HTTP: a shard refuses submissions before its inception and once it is
//! read-only (a configured time after its NotAfter window closed), while its read path and
//! `get-roots` go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_ct::CtServer;
use common::{Pki, base_url, chain_body, client, log_config, server_config};

/// A case: its name, how it changes the log's configuration, the add-chain status expected.
type Case = (&'static str, Box<dyn Fn(&mut cairn_ct::LogConfig)>, u16);

#[tokio::test]
async fn a_shard_takes_submissions_only_between_inception_and_read_only() {
    let pki = Pki::new();
    let leaf = pki.leaf("a.example", (2030, 6, 1), false, false);
    let body = chain_body(&pki.chain(&leaf, false));
    let now = time::OffsetDateTime::now_utc();
    let cases: [Case; 3] = [
        (
            "not yet open",
            Box::new(move |l| l.inception = Some(now + time::Duration::days(1))),
            403,
        ),
        (
            "read-only",
            Box::new(|l| {
                l.not_after_start = time::macros::datetime!(2020-01-01 0:00 UTC);
                l.not_after_limit = time::macros::datetime!(2020-07-01 0:00 UTC);
                l.read_only_after_s = Some(86_400);
            }),
            403,
        ),
        (
            "open",
            Box::new(move |l| {
                l.inception = Some(now - time::Duration::days(1));
                l.read_only_after_s = Some(86_400);
            }),
            200,
        ),
    ];
    for (what, edit, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = log_config(dir.path(), &pki);
        edit(&mut cfg);
        let server = CtServer::start(&server_config(cfg)).await.unwrap();
        let base = base_url(server.local_addr());
        let c = client();
        let r = c
            .post(format!("{base}/ct/v1/add-chain"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{what}");
        for path in ["checkpoint", "ct/v1/get-roots", "log.v3.json"] {
            let r = c.get(format!("{base}/{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{what}: {path}");
        }
        server.shutdown().await;
    }
}
