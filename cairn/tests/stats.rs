//! The public statistics page on `cairn serve`'s public listener: after a known number of
//! issuances and revocations through ACME (with client mistakes mixed in), CT submissions to
//! the local logs and DAP reports aggregated, `/stats.json` and `/stats` show the same, right
//! numbers, the SLI table included. The page has no script, so a plain HTTP client sees what a browser shows; headless
//! Chromium (Debian `chromium`; `.ci/run` installs it) loads it too, its DOM shows the same
//! numbers, and its screenshot is kept as a test artifact (`stats.png` in Cargo's target
//! temporary directory).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

mod common;

use common::TestCa;
use instant_acme::{ChallengeType, Identifier, RevocationRequest};
use rustls_pki_types::CertificateDer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_issuance_revocation_and_registered_domains() {
    let ca = TestCa::start_with(|cfg| {
        cfg.ct.enabled = true;
        cfg.ct.local_logs = true;
        cfg.ct.local_period_ms = 50;
        cfg.dap.enabled = true;
        cfg.dap.driver_period_ms = 50;
    })
    .await;
    let account = ca.account().await;
    let mut leaves = vec![];
    for names in [
        &["www.stats-a.example.com", "stats-a.example.com"][..],
        &["api.stats-a.example.com"][..],
        &["stats-b.example.org"][..],
    ] {
        let ids: Vec<Identifier> = names.iter().map(|n| Identifier::Dns((*n).into())).collect();
        let (pem, _) = ca.issue(&account, &ids, ChallengeType::Http01).await;
        leaves.push(common::pem_chain(&pem).remove(0));
    }
    account
        .revoke(&RevocationRequest {
            certificate: &CertificateDer::from(leaves[1].clone()),
            reason: None,
        })
        .await
        .unwrap();

    // Client mistakes: refused, and not counted against the SLI.
    const MISTAKES: u64 = 4;
    let acme_http = ca.http();
    for _ in 0..MISTAKES {
        ca.malformed_new_order(&acme_http).await;
    }
    // Five DAP reports, aggregated and collected.
    let dap = ca.server.dap.as_ref().unwrap();
    let http = reqwest::Client::new();
    let params = common::dap::task_parameters(dap, 5);
    let collector = common::dap::create_task(dap, &params, &http).await;
    common::dap::upload(&params, &[1, 2, 3, 4, 5], &http).await;
    let collection = collector
        .collect(
            cairn_dap_messages::Query::LeaderSelected,
            200,
            std::time::Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(collection.report_count, 5);

    let base = format!("http://{}", ca.server.public_addr);
    let resp = http.get(format!("{base}/stats.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["active_certificates"], 2, "{json}");
    assert_eq!(json["active_domains"], 2, "{json}");
    assert_eq!(json["issued_last_year"], 3, "{json}");
    let days = json["daily_issuance"].as_array().unwrap();
    assert_eq!(days.len(), 365);
    let now = time::OffsetDateTime::now_utc().date();
    let today = now.to_string();
    assert_eq!(days.last().unwrap()["date"], today.as_str());
    // A certificate counts on the day of its notBefore, which is backdated (an hour by
    // default): just after midnight UTC, today's issuance shows on yesterday's bar.
    let issued_on = cairn_x509::CertInfo::from_der(&leaves[0])
        .unwrap()
        .not_before
        .date();
    for leaf in &leaves {
        let not_before = cairn_x509::CertInfo::from_der(leaf).unwrap().not_before;
        assert_eq!(not_before.date(), issued_on, "issued within the same day");
    }
    let day = days
        .iter()
        .find(|d| d["date"] == issued_on.to_string().as_str())
        .unwrap_or_else(|| panic!("no bar for {issued_on}: {json}"));
    assert_eq!(day["issued"], 3, "{json}");
    let counted_days = ((now - issued_on).whole_days() + 1) as f64;
    let avg = json["average_daily_issuance"].as_f64().unwrap();
    assert_eq!(avg, 3.0 / counted_days, "issuance since the first day");
    assert_eq!(
        json["issuance_per_second"].as_f64().unwrap(),
        3.0 / counted_days / 86_400.0
    );

    // The SLI table: the three orders are new-order's valid requests, the malformed ones are
    // not; nothing failed on the server's side.
    assert_eq!(json["sli_since"], today.as_str(), "{json}");
    let sli = |listener: &str, endpoint: &str| {
        json["slis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["listener"] == listener && s["endpoint"] == endpoint)
            .cloned()
            .unwrap_or_else(|| panic!("no SLI for {listener} {endpoint}: {json}"))
    };
    let new_order = sli("acme", "/acme/new-order");
    assert_eq!(new_order["valid"], 3, "{new_order}");
    assert_eq!(new_order["errors"], 0, "{new_order}");
    assert_eq!(new_order["success_percent"], 100.0, "{new_order}");
    assert_eq!(sli("acme", "/acme/order/{id}/finalize")["valid"], 3);
    assert_eq!(sli("acme", "/acme/revoke-cert")["valid"], 1);
    for s in json["slis"].as_array().unwrap() {
        assert_eq!(s["errors"], 0, "{s}");
    }
    assert!(
        json["slis"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["listener"] == "dap" && s["valid"].as_u64().unwrap() > 0),
        "the DAP uploads count: {json}"
    );
    // The local CT logs: every issuance was submitted to each of them.
    let ct_logs = json["ct_logs"].as_array().unwrap();
    assert_eq!(ct_logs.len(), ca.server.ct.local_logs.len());
    assert!(!ct_logs.is_empty());
    for (shown, log) in ct_logs.iter().zip(&ca.server.ct.local_logs) {
        assert_eq!(shown["name"], log.name());
        let size = shown["tree_size"].as_u64().unwrap();
        assert!(size >= 3 && size <= log.tree_size(), "{shown}");
        assert_eq!(shown["daily"][0]["date"], today.as_str());
    }
    assert_eq!(json["dap_reports_aggregated"], 5, "{json}");

    let resp = http.get(format!("{base}/stats")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().await.unwrap();
    let avg_cell = format!("{avg:.1}");
    for (id, value) in [
        ("active-certificates", "2"),
        ("active-domains", "2"),
        ("issued-last-year", "3"),
        ("average-daily-issuance", avg_cell.as_str()),
    ] {
        let cell = format!(r#"id="{id}">{value}</td>"#);
        assert!(page.contains(&cell), "{cell} missing from the page");
    }
    assert!(page.contains(r#"<svg id="chart-per-day""#));
    let new_order_row = r#"<tr data-listener="acme" data-endpoint="/acme/new-order"><td>acme</td><td><code>/acme/new-order</code></td><td class="n valid">3</td><td class="n errors">0</td><td class="n success">100.0000 %</td></tr>"#;
    assert!(page.contains(new_order_row), "{page}");
    assert!(page.contains(r#"id="dap-reports-aggregated">5</td>"#));
    assert!(page.contains(r#"<svg id="chart-ct-0""#));
    assert!(page.contains("<title>maximum 3</title>"));
    // Self-contained: no script and nothing loaded from elsewhere.
    assert!(!page.contains("<script"));
    assert!(!page.contains("src="));
    assert!(!page.contains("href=\"http"));

    // In a real browser.
    let Some(chromium) = cairn_test_services::program("chromium") else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let browse = |extra: &[String]| {
        let mut cmd = std::process::Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("{base}/stats"));
        cmd.output().expect("chromium runs")
    };
    let out = browse(&["--dump-dom".into()]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (id, value) in [
        ("active-certificates", "2"),
        ("active-domains", "2"),
        ("issued-last-year", "3"),
    ] {
        let cell = format!(r#"id="{id}">{value}</td>"#);
        assert!(
            dom.contains(&cell),
            "{cell} missing from Chromium's DOM:\n{dom}"
        );
    }
    assert!(dom.contains("<rect "), "the chart's bars are in the DOM");
    assert!(
        dom.contains(new_order_row),
        "the SLI row is in Chromium's DOM"
    );
    assert!(dom.contains(r#"id="dap-reports-aggregated">5</td>"#));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stats.png");
    let _ = std::fs::remove_file(&shot);
    let out = browse(&[format!("--screenshot={}", shot.display())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
