//! The DAP console that `cairn serve`'s leader serves under `/console/` (`[dap.console]`),
//! driven over HTTP as a browser would (cookies, forms, CSRF tokens): sign-up and log-in, a
//! histogram metric created at the leader and the shared helper, reports uploaded with the
//! client library and `cairn dap upload`, collected, and counted on the task page; one
//! account's objects are invisible to another, by URL and by API; CSRF attempts, wrong
//! passwords and revoked API tokens are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failure with a location

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::{AggregateResult, HpkeKeypair, Measurement, TaskParameters};
use cairn_dap_messages::{Decode, HpkeConfig, Query};
use reqwest::StatusCode;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

/// The CA with the DAP pair and the console; batches of 6 reports are allowed.
async fn start() -> common::TestCa {
    common::TestCa::start_with(|cfg| {
        cfg.dap.enabled = true;
        cfg.dap.driver_period_ms = 50;
        cfg.dap.console.enabled = true;
        cfg.dap.console.min_batch_size_floor = 5;
        cfg.dap.console.login_limits.per_email = 3;
    })
    .await
}

fn console_url(ca: &common::TestCa) -> String {
    let dap = ca.server.dap.as_ref().expect("DAP runs");
    format!("{}console", dap.leader_url)
}

/// An answer: status, `Location`, body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

/// A browser: one cookie jar of one session, no redirects followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        if let Some(c) = &set_cookie {
            // `name=value; Path=…`: keep the pair.
            self.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        Answer {
            status: resp.status(),
            location,
            set_cookie,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// Signs up and returns the new account's ID.
    async fn sign_up(&mut self, email: &str) -> String {
        let a = self
            .post("/signup", &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set_cookie = a.set_cookie.unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        self.account_id().await
    }

    /// The account of a person with one account (the accounts page redirects to it).
    async fn account_id(&mut self) -> String {
        let a = self.get("/accounts").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        let location = a.location.unwrap();
        location.rsplit('/').next().unwrap().to_owned()
    }

    /// The session's CSRF token, from the account page's forms.
    async fn csrf(&mut self, account: &str) -> String {
        let page = self.get(&format!("/accounts/{account}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        between(&page.body, "name=\"csrf\" value=\"", "\"").to_owned()
    }

    /// Creates an API token through the page; returns the token, shown once.
    async fn api_token(&mut self, account: &str, name: &str) -> String {
        let csrf = self.csrf(account).await;
        let page = self
            .post(
                &format!("/accounts/{account}/tokens"),
                &[("csrf", &csrf), ("name", name)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        between(&page.body, "<pre id=\"api-token\">", "</pre>").to_owned()
    }
}

/// The text between `start` and the next `end` in `text`.
fn between<'t>(text: &'t str, start: &str, end: &str) -> &'t str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

/// A JSON API call with a bearer token.
async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
) -> (StatusCode, String) {
    let resp = http
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// What the console handed out for a new histogram metric.
struct CreatedTask {
    task_id: String,
    collector_token: String,
    collector_keys: HpkeKeypair,
    parameters: TaskParameters,
}

/// Makes a collector credential on the server (its key file downloaded once) and a histogram
/// metric with three named buckets and batches of 6 reports at the shared helper.
async fn create_histogram_task(b: &mut Browser, account: &str) -> CreatedTask {
    let csrf = b.csrf(account).await;
    let file = b
        .post(
            &format!("/accounts/{account}/credentials/generate"),
            &[("csrf", &csrf), ("name", "collector")],
        )
        .await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.body);
    // The key file is the one `cairn dap collect --hpke-keypair` reads.
    let file: serde_json::Value = serde_json::from_str(&file.body).unwrap();
    let config = URL_SAFE_NO_PAD
        .decode(file["config"].as_str().unwrap())
        .unwrap();
    let private_key = URL_SAFE_NO_PAD
        .decode(file["private_key"].as_str().unwrap())
        .unwrap();
    let collector_keys =
        HpkeKeypair::new(HpkeConfig::get_decoded(&config).unwrap(), private_key).unwrap();

    let wizard = b.get(&format!("/accounts/{account}/tasks/new")).await;
    assert_eq!(wizard.status, StatusCode::OK, "{}", wizard.body);
    let credential = between(
        &wizard.body,
        "<select name=\"credential\" id=\"credential\">\n        <option value=\"",
        "\"",
    )
    .to_owned();
    let created = b
        .post(
            &format!("/accounts/{account}/tasks"),
            &[
                ("csrf", &csrf),
                ("name", "Pages per visit"),
                ("kind", "histogram"),
                ("bucket_style", "named"),
                ("buckets", "one\ntwo\nthree or more"),
                ("time_precision", "60"),
                ("batching", "report_count"),
                ("min_batch_size", "6"),
                ("helper", "shared"),
                ("credential", &credential),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let task_id = between(&created.body, "<code id=\"task-id\">", "</code>").to_owned();
    let collector_token =
        between(&created.body, "<pre id=\"collector-token\">", "</pre>").to_owned();
    let json = b
        .get(&format!("/accounts/{account}/tasks/{task_id}/task.json"))
        .await;
    assert_eq!(json.status, StatusCode::OK);
    let parameters: TaskParameters = serde_json::from_str(&json.body).unwrap();
    CreatedTask {
        task_id,
        collector_token,
        collector_keys,
        parameters,
    }
}

/// The number in `<td id="{id}">` of a task page.
fn counter(page: &str, id: &str) -> u64 {
    between(page, &format!("<td id=\"{id}\">"), "</td>")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_histogram_metric_made_in_the_console_collects_and_shows_its_counts() {
    let ca = start().await;
    let dap = ca.server.dap.as_ref().unwrap();
    let mut alice = Browser::new(&console_url(&ca));
    let account = alice.sign_up("alice@example.com").await;
    let task = create_histogram_task(&mut alice, &account).await;

    // The task is at this leader and this helper, with the wizard's answers.
    let p = &task.parameters;
    assert_eq!(p.leader_endpoint, dap.leader_url);
    assert_eq!(p.helper_endpoint, dap.helper_url);
    assert_eq!(p.task_id.to_string(), task.task_id);
    assert_eq!(p.min_batch_size, 6);
    assert_eq!(p.time_precision, 60);
    assert_eq!(
        serde_json::to_value(&p.vdaf).unwrap(),
        serde_json::json!({"type": "Prio3Histogram", "length": 3, "chunk_length": 1})
    );

    // Five reports from the client library, one from `cairn dap upload` as the page's
    // snippet says (with the page's task.json).
    let http = reqwest::Client::new();
    let client = cairn_dap_client::Client::new(p.clone(), http.clone())
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ms: Vec<Measurement> = [0, 2, 1, 2, 2].map(Measurement::Integer).to_vec();
    let refused = client.upload_measurements(&ms, now).await.unwrap();
    assert!(refused.status.is_empty(), "{refused:?}");
    let page = alice
        .get(&format!("/accounts/{account}/tasks/{}", task.task_id))
        .await;
    let snippet = between(
        &page.body,
        "<pre class=\"snippet\" id=\"upload-snippet\">",
        "</pre>",
    );
    assert_eq!(snippet, "cairn dap upload --task task.json 0");
    let dir = tempfile::tempdir().unwrap();
    let json = alice
        .get(&format!(
            "/accounts/{account}/tasks/{}/task.json",
            task.task_id
        ))
        .await;
    std::fs::write(dir.path().join("task.json"), json.body).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["dap", "upload", "--task", "task.json", "2"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let collector = cairn_dap_collector::Collector::new(
        p.clone(),
        task.collector_keys,
        task.collector_token,
        http.clone(),
    );
    let c = collector
        .collect(Query::LeaderSelected, 200, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(c.report_count, 6);
    assert_eq!(c.aggregate_result, AggregateResult::Vector(vec![1, 1, 4]));

    let page = alice
        .get(&format!("/accounts/{account}/tasks/{}", task.task_id))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(counter(&page.body, "accepted"), 6, "{}", page.body);
    assert_eq!(counter(&page.body, "aggregated"), 6);
    assert_eq!(counter(&page.body, "pending"), 0);
    assert_eq!(counter(&page.body, "failed"), 0);
    assert_eq!(counter(&page.body, "collections"), 1);
    assert!(page.body.contains("Ready to collect."));

    // The same figures from the leader's control plane (the aggregator API).
    let control = |path: &str| {
        http.get(format!("{}control/{path}", dap.leader_url))
            .bearer_auth(dap.control_token())
    };
    let list: serde_json::Value = control("tasks").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["task_ids"], serde_json::json!([task.task_id]));
    let view = control(&format!("tasks/{}", task.task_id))
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), StatusCode::OK);
    let view: serde_json::Value = view.json().await.unwrap();
    assert_eq!(view["role"], "leader");
    assert_eq!(view["parameters"]["min_batch_size"], 6);
    assert!(!view.to_string().contains("verify_key"), "{view}");
    let metrics: serde_json::Value = control(&format!("tasks/{}/metrics", task.task_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metrics["upload_counters"]["accepted"], 6, "{metrics}");
    assert_eq!(metrics["reports"]["aggregated"], 6, "{metrics}");
    assert_eq!(metrics["collection_jobs"], 1, "{metrics}");
    let (status, _) = api(
        &http,
        reqwest::Method::GET,
        &format!("{}control/tasks", dap.leader_url),
        "wrong",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The console's own page and assets: nothing from elsewhere.
    for asset in ["/assets/console.js", "/assets/console.css"] {
        assert_eq!(alice.get(asset).await.status, StatusCode::OK);
    }
    assert!(!page.body.contains("src=\"http"), "{}", page.body);
    assert!(!page.body.contains("href=\"http"), "{}", page.body);
}

#[tokio::test]
async fn another_account_cannot_see_or_touch_a_task_by_url_or_api() {
    let ca = start().await;
    let base = console_url(&ca);
    let mut alice = Browser::new(&base);
    let a_account = alice.sign_up("alice@example.com").await;
    let task = create_histogram_task(&mut alice, &a_account).await;
    let a_token = alice.api_token(&a_account, "alice's").await;
    let mut bob = Browser::new(&base);
    let b_account = bob.sign_up("bob@example.com").await;
    assert_ne!(a_account, b_account);
    let b_csrf = bob.csrf(&b_account).await;
    let b_token = bob.api_token(&b_account, "bob's").await;
    let t = &task.task_id;

    // Pages: Alice's account, her task through her account or through Bob's, its parameters.
    for path in [
        format!("/accounts/{a_account}"),
        format!("/accounts/{a_account}/tasks/{t}"),
        format!("/accounts/{a_account}/tasks/{t}/task.json"),
        format!("/accounts/{b_account}/tasks/{t}"),
        format!("/accounts/{b_account}/tasks/{t}/task.json"),
        format!("/accounts/{a_account}/tasks/new"),
    ] {
        let a = bob.get(&path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
        assert!(!a.body.contains("Pages per visit"));
    }
    // State changes with Bob's own valid CSRF token.
    for path in [
        format!("/accounts/{a_account}/tasks/{t}/delete"),
        format!("/accounts/{b_account}/tasks/{t}/delete"),
        format!("/accounts/{a_account}/tokens"),
    ] {
        let a = bob
            .post(&path, &[("csrf", &b_csrf), ("name", "mine now")])
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
    }
    // The API with Bob's token.
    let http = reqwest::Client::new();
    let (status, body) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/tasks"),
        &b_token,
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, _) = api(&http, method, &format!("{base}/api/tasks/{t}"), &b_token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Nobody logged in: the pages send to the log-in page, the API wants a token.
    let mut stranger = Browser::new(&base);
    let a = stranger
        .get(&format!("/accounts/{a_account}/tasks/{t}"))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location.as_deref(), Some("/console/login"));
    let (status, _) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/tasks/{t}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Alice still has it, by page and API; and she can delete it.
    let page = alice.get(&format!("/accounts/{a_account}/tasks/{t}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let (status, body) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/tasks/{t}"),
        &a_token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["task_id"], task.task_id.as_str());
    assert_eq!(v["status"]["accepted"], 0);
    let (status, _) = api(
        &http,
        reqwest::Method::DELETE,
        &format!("{base}/api/tasks/{t}"),
        &a_token,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/tasks"),
        &a_token,
    )
    .await;
    assert_eq!(body, "[]");
    // Deleted at both aggregators, not only hidden.
    let dap = ca.server.dap.as_ref().unwrap();
    for aggregator in [&dap.leader_url, &dap.helper_url] {
        let url = format!("{aggregator}control/tasks/{t}");
        let (status, _) = api(&http, reqwest::Method::GET, &url, dap.control_token()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
    }

    // Sharing is by membership: once Alice adds Bob, her account opens for him.
    let a_csrf = alice.csrf(&a_account).await;
    let added = alice
        .post(
            &format!("/accounts/{a_account}/members"),
            &[("csrf", &a_csrf), ("email", "bob@example.com")],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let shared = bob.get(&format!("/accounts/{a_account}")).await;
    assert_eq!(shared.status, StatusCode::OK);
    assert!(shared.body.contains("bob@example.com"), "{}", shared.body);
}

#[tokio::test]
async fn csrf_attempts_wrong_passwords_and_revoked_tokens_are_refused() {
    let ca = start().await;
    let base = console_url(&ca);
    let mut alice = Browser::new(&base);
    let account = alice.sign_up("alice@example.com").await;
    let csrf = alice.csrf(&account).await;
    let mut bob = Browser::new(&base);
    let bob_account = bob.sign_up("bob@example.com").await;
    let bob_csrf = bob.csrf(&bob_account).await;

    // CSRF: no token, a wrong one, another session's: 403 and nothing made.
    let tokens = format!("/accounts/{account}/tokens");
    for fields in [
        vec![("name", "forged")],
        vec![("csrf", "not-the-token"), ("name", "forged")],
        vec![("csrf", bob_csrf.as_str()), ("name", "forged")],
    ] {
        let a = alice.post(&tokens, &fields).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{fields:?}: {}", a.body);
    }
    // A cross-site form without the (SameSite) cookie is just not logged in.
    let a = Browser::new(&base)
        .post(&tokens, &[("csrf", &csrf), ("name", "forged")])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        !alice
            .get(&format!("/accounts/{account}"))
            .await
            .body
            .contains("forged")
    );

    // API tokens: listed by prefix only; a revoked one stops working, the other goes on.
    let first = alice.api_token(&account, "first").await;
    let second = alice.api_token(&account, "second").await;
    let http = reqwest::Client::new();
    let (status, body) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/tokens"),
        &first,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 2);
    for token in [&first, &second] {
        let (prefix, secret) = token.split_once('.').unwrap();
        assert!(!body.contains(secret));
        assert!(list.iter().any(|t| t["prefix"] == prefix), "{body}");
    }
    let page = alice.get(&format!("/accounts/{account}")).await.body;
    assert!(!page.contains(second.split_once('.').unwrap().1));
    let second_id = list.iter().find(|t| t["name"] == "second").unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/accounts/{account}/tokens/{second_id}/revoke");
    assert_eq!(
        alice.post(&revoke, &[]).await.status,
        StatusCode::FORBIDDEN,
        "revoking needs the CSRF token too"
    );
    let a = alice.post(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (status, _) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/account"),
        &second,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/account"),
        &first,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&account));
    // A token whose secret part is changed is not the token.
    let (prefix, _) = first.split_once('.').unwrap();
    let forged = format!("{prefix}.{}", "A".repeat(43));
    let (status, _) = api(
        &http,
        reqwest::Method::GET,
        &format!("{base}/api/account"),
        &forged,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Log-in: a wrong password is refused without a session; the right one logs in.
    let mut again = Browser::new(&base);
    let wrong = again
        .post(
            "/login",
            &[
                ("email", "alice@example.com"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.set_cookie.is_none());
    let unknown = again
        .post(
            "/login",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    // An unknown address is answered as a wrong password is.
    for a in [&wrong, &unknown] {
        assert!(
            a.body.contains("wrong e-mail address or password"),
            "{}",
            a.body
        );
    }
    let ok = again
        .post(
            "/login",
            &[("email", "alice@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(again.account_id().await, account);

    // The log-in limit (3 failures per address here): then even the right password waits.
    let mut guesser = Browser::new(&base);
    for _ in 0..3 {
        let a = guesser
            .post(
                "/login",
                &[
                    ("email", "bob@example.com"),
                    ("password", "guess guess guess"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = guesser
        .post(
            "/login",
            &[("email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.set_cookie.is_none());
}

/// Runs `cairn` with `args` in `dir` (and `env`); its standard output, or a failure.
async fn cairn_cli(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The same story in Chromium, driven by playwright-core (dap/console/tests/browser): the
/// collector key pair is made by the browser's WebCrypto, the snippet copied with its button,
/// and `cairn dap upload` / `cairn dap collect` use the files the browser downloaded.
/// Screenshots are left in `$CARGO_TARGET_TMPDIR/dap-console-browser/`.
#[tokio::test]
async fn in_chromium_a_metric_is_created_collected_counted_and_kept_private() {
    let Some(chromium) = cairn_test_services::program("chromium") else {
        return;
    };
    let Some(node) = cairn_test_services::program("node") else {
        return;
    };
    let script_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("dap/console/tests/browser");
    if !script_dir.join("node_modules/playwright-core").is_dir() {
        assert!(
            !cairn_test_services::in_ci(),
            "playwright-core is not installed: npm ci in dap/console/tests/browser"
        );
        eprintln!("skipping: npm ci in dap/console/tests/browser first");
        return;
    }
    let ca = start().await;
    let base = console_url(&ca);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dap-console-browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let browse = |phase: &'static str| {
        let mut cmd = tokio::process::Command::new(&node);
        cmd.arg(script_dir.join("console.mjs"))
            .arg(phase)
            .arg(&base)
            .arg(&out)
            .env("CHROMIUM", &chromium);
        async move {
            let o = cmd.output().await.unwrap();
            assert!(
                o.status.success(),
                "console.mjs {phase}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    };
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };

    browse("create").await;
    let created = read("created.json");
    assert_eq!(
        created["clipboard"], "cairn dap upload --task task.json 0",
        "{created}"
    );
    let key_file = read("collector-key.json");
    assert!(key_file["private_key"].is_string(), "{key_file}");

    cairn_cli(
        &out,
        &[
            "dap",
            "upload",
            "--task",
            "task.json",
            "0",
            "2",
            "1",
            "2",
            "2",
            "2",
        ],
        &[],
    )
    .await;
    let token = created["collector_token"].as_str().unwrap();
    // Collected with the CLI, which stores the decrypted result at the console for the chart.
    let collected = cairn_cli(
        &out,
        &[
            "dap",
            "collect",
            "--task",
            "task.json",
            "--hpke-keypair",
            "collector-key.json",
            "--console",
            &base,
        ],
        &[
            ("CAIRN_DAP_COLLECTOR_TOKEN", token),
            (
                "CAIRN_CONSOLE_TOKEN",
                created["api_token"].as_str().unwrap(),
            ),
        ],
    )
    .await;
    let collected: serde_json::Value = serde_json::from_str(&collected).unwrap();
    assert_eq!(collected["report_count"], 6, "{collected}");
    assert_eq!(
        collected["aggregate_result"],
        serde_json::to_value(AggregateResult::Vector(vec![1, 1, 4])).unwrap()
    );

    browse("check").await;
    let checked = read("checked.json");
    let expect = serde_json::json!({
        "counts": { "accepted": 6, "aggregated": 6, "collections": 1, "ready": true },
        "chart": { "bars": 1, "bar_title": checked["chart"]["bar_title"], "result": "1, 1, 4" },
        "csrf": { "missing": 403, "wrong": 403, "still_there": 200 },
        "other": {
            "by_url": 404, "through_own_account": 404, "task_json": 404, "delete_form": 404,
            "api_get": 404, "api_delete": 404, "api_list": [], "api_store_result": 404,
        },
        "wrong_password": { "status": 401, "message": "wrong e-mail address or password" },
    });
    assert_eq!(checked, expect);
    let title = checked["chart"]["bar_title"].as_str().unwrap();
    assert!(
        title.ends_with("· 6 reports · one: 1, two: 1, three or more: 4"),
        "{title}"
    );
    assert!(out.join("05-task-counts.png").is_file());
    assert!(out.join("05b-results-chart.png").is_file());
}

/// `cairn dap console` on a listener of its own, on the leader's datastore (here the SQLite
/// file of `cairn serve`'s leader, shared by the two processes): a metric created there is at
/// the leader, and the person who signed up there can log in to the leader's console too.
#[tokio::test]
async fn cairn_dap_console_serves_the_console_beside_a_leader() {
    let ca = start().await;
    let dap = ca.server.dap.as_ref().unwrap();
    let dap_dir = ca.dir.path().join("data").join("dap");
    let key = std::env::var("CAIRN_DAP_DATASTORE_KEY").unwrap_or_else(|_| {
        std::fs::read_to_string(dap_dir.join("datastore.key"))
            .unwrap()
            .trim()
            .to_owned()
    });
    let port = common::free_port();
    let config = dap_dir.join("console.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n\
             database_url = \"sqlite://{}?mode=rwc\"\n\
             leader_url = \"{}\"\n\
             shared_helper_url = \"{}\"\n\
             [console]\nmin_batch_size_floor = 5\n",
            dap_dir.join("leader.db").display(),
            dap.leader_url,
            dap.helper_url,
        ),
    )
    .unwrap();
    let _console = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["dap", "console", "--config"])
        .arg(&config)
        .env("CAIRN_DAP_DATASTORE_KEY", &key)
        .env("CAIRN_DAP_CONTROL_TOKEN", dap.control_token())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/console");
    let mut standalone = Browser::new(&base);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let up = standalone
            .http
            .get(format!("{base}/login"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK);
        if up {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cairn dap console did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let account = standalone.sign_up("carol@example.com").await;
    let task = create_histogram_task(&mut standalone, &account).await;
    assert_eq!(task.parameters.leader_endpoint, dap.leader_url);
    let http = reqwest::Client::new();
    let url = format!("{}control/tasks/{}", dap.leader_url, task.task_id);
    let (status, _) = api(&http, reqwest::Method::GET, &url, dap.control_token()).await;
    assert_eq!(status, StatusCode::OK);

    // One datastore: the leader's own console knows Carol and her task.
    let mut on_leader = Browser::new(&console_url(&ca));
    let ok = on_leader
        .post(
            "/login",
            &[("email", "carol@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let page = on_leader
        .get(&format!("/accounts/{account}/tasks/{}", task.task_id))
        .await;
    assert_eq!(page.status, StatusCode::OK);

    // The log-in limit is in the datastore: three failures at the standalone console (which
    // allows 5) use up the leader's console's allowance of 3 for the address.
    for _ in 0..3 {
        let wrong = standalone
            .post(
                "/login",
                &[("email", "carol@example.com"), ("password", "nope")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = Browser::new(&console_url(&ca))
        .post(
            "/login",
            &[("email", "carol@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.body
    );
    let still = Browser::new(&base)
        .post(
            "/login",
            &[("email", "carol@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(still.status, StatusCode::SEE_OTHER, "{}", still.body);
}

/// Members leave or are removed (an account keeps its last one); a password change needs the
/// current password and logs out the person's other sessions; a helper URL that points where
/// only the console's network reaches is refused — as a literal address when pairing, and as
/// a name resolving to loopback when the console would connect (nothing reaches the listener).
#[tokio::test]
async fn members_leave_passwords_change_and_private_helpers_are_refused() {
    let ca = start().await;
    let base = console_url(&ca);
    let http = reqwest::Client::new();
    let mut alice = Browser::new(&base);
    let account = alice.sign_up("alice@example.com").await;
    let mut bob = Browser::new(&base);
    bob.sign_up("bob@example.com").await;

    let csrf = alice.csrf(&account).await;
    let members = format!("/accounts/{account}/members");
    let added = alice
        .post(&members, &[("csrf", &csrf), ("email", "bob@example.com")])
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    assert_eq!(
        bob.get(&format!("/accounts/{account}")).await.status,
        StatusCode::OK
    );
    let remove = format!("{members}/remove");
    let removed = alice
        .post(&remove, &[("csrf", &csrf), ("email", "BOB@example.com")])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert_eq!(
        bob.get(&format!("/accounts/{account}")).await.status,
        StatusCode::NOT_FOUND
    );
    let again = alice
        .post(&remove, &[("csrf", &csrf), ("email", "bob@example.com")])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("nobody with that address is a member"));
    let last = alice
        .post(&remove, &[("csrf", &csrf), ("email", "alice@example.com")])
        .await;
    assert_eq!(last.status, StatusCode::BAD_REQUEST);
    assert!(last.body.contains("an account keeps at least one member"));
    // Bob, no longer a member, cannot remove Alice with his own session's token.
    let bob_account = bob.account_id().await;
    let bob_csrf = bob.csrf(&bob_account).await;
    let foreign = bob
        .post(
            &remove,
            &[("csrf", &bob_csrf), ("email", "alice@example.com")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    // A second session of Alice's, then a password change in the first.
    let mut elsewhere = Browser::new(&base);
    let ok = elsewhere
        .post(
            "/login",
            &[("email", "alice@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let new_password = "a much longer new passphrase";
    let wrong = alice
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", "not it"),
                ("new", new_password),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let short = alice
        .post(
            "/password",
            &[("csrf", &csrf), ("current", PASSWORD), ("new", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let forged = alice
        .post(
            "/password",
            &[
                ("csrf", "forged"),
                ("current", PASSWORD),
                ("new", new_password),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let changed = alice
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", new_password),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body.contains("id=\"changed\""));
    assert_eq!(
        alice.get(&format!("/accounts/{account}")).await.status,
        StatusCode::OK
    );
    let gone = elsewhere.get(&format!("/accounts/{account}")).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(gone.location.unwrap().ends_with("/console/login"));
    let mut fresh = Browser::new(&base);
    let old = fresh
        .post(
            "/login",
            &[("email", "alice@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = fresh
        .post(
            "/login",
            &[("email", "alice@example.com"), ("password", new_password)],
        )
        .await;
    assert_eq!(new.status, StatusCode::SEE_OTHER);

    // Helpers: literal private addresses are refused when pairing, by page and by API.
    for url in [
        "http://127.0.0.1:9/",
        "http://169.254.169.254/latest/",
        "http://[::1]:9/",
        "http://10.0.0.8/",
    ] {
        let page = alice
            .post(
                &format!("/accounts/{account}/helpers"),
                &[
                    ("csrf", &csrf),
                    ("name", "h"),
                    ("dap_url", url),
                    ("control_token", "t"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{url}: {}", page.body);
        assert!(
            page.body.contains("does not send requests to"),
            "{}",
            page.body
        );
    }
    let token = alice.api_token(&account, "ops").await;
    let pair = |dap_url: String| {
        http.post(format!("{base}/api/helpers"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": "h", "dap_url": dap_url, "control_token": "t" }))
            .send()
    };
    let refused = pair("http://127.0.0.1:9/".into()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    // A name that resolves to loopback pairs (it is not resolved then), but the console never
    // connects to it: creating a task there fails and the listener sees no connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let paired = pair(format!("http://localhost:{port}/")).await.unwrap();
    assert_eq!(paired.status(), StatusCode::CREATED);
    let helper: serde_json::Value = paired.json().await.unwrap();
    let keys = HpkeKeypair::generate(cairn_dap_messages::HpkeConfigId(1));
    use cairn_dap_messages::Encode;
    let credential: serde_json::Value = http
        .post(format!("{base}/api/collector_credentials"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "c",
            "hpke_config": URL_SAFE_NO_PAD.encode(keys.config().get_encoded().unwrap()),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = http
        .post(format!("{base}/api/tasks"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "visits", "kind": "count", "time_precision": "3600",
            "batching": "report_count", "min_batch_size": "10",
            "helper": helper["helper_id"], "credential": credential["credential_id"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        task.status(),
        StatusCode::BAD_GATEWAY,
        "{}",
        task.text().await.unwrap()
    );
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the console connected to a loopback helper"
    );
}

/// A collector stores decrypted results through the API for the task page's chart: the
/// result must fit the metric, the same time window stored again replaces its bar, and
/// another account's token cannot store or read them.
#[tokio::test]
async fn stored_results_are_checked_and_charted_by_window() {
    let ca = start().await;
    let base = console_url(&ca);
    let http = reqwest::Client::new();
    let mut alice = Browser::new(&base);
    let account = alice.sign_up("alice@example.com").await;
    let task = create_histogram_task(&mut alice, &account).await;
    let token = alice.api_token(&account, "collector").await;
    let mut bob = Browser::new(&base);
    let bob_account = bob.sign_up("bob@example.com").await;
    let bob_token = bob.api_token(&bob_account, "bob").await;
    let results = format!("{base}/api/tasks/{}/results", task.task_id);
    let store = |token: &str, body: serde_json::Value| {
        http.post(&results).bearer_auth(token).json(&body).send()
    };
    let page_path = format!("/accounts/{account}/tasks/{}", task.task_id);
    let page = alice.get(&page_path).await;
    assert!(page.body.contains("id=\"no-results\""), "{}", page.body);
    assert!(
        page.body
            .replace("&#x2f;", "/")
            .contains(&format!("--console {base}")),
        "{}",
        page.body
    );

    let result = |start: u64, values: [u64; 3]| {
        serde_json::json!({
            "batch": format!("{start}+3600"),
            "interval": { "start": start, "duration": 3600 },
            "report_count": values.iter().sum::<u64>(),
            "aggregate_result": values,
        })
    };
    for (start, values) in [
        (1_800_000_000, [1, 2, 3]),
        (1_800_003_600, [4, 0, 2]),
        (1_800_000_000, [2, 2, 2]),
    ] {
        let r = store(&token, result(start, values)).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
    for bad in [
        serde_json::json!({ "interval": { "start": 0, "duration": 60 }, "report_count": 1,
                            "aggregate_result": [1, 2] }),
        serde_json::json!({ "interval": { "start": 0, "duration": 60 }, "report_count": 1,
                            "aggregate_result": 3 }),
        serde_json::json!({ "interval": { "start": 0 }, "report_count": 1,
                            "aggregate_result": [1, 2, 3] }),
    ] {
        let r = store(&token, bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let foreign = store(&bob_token, result(1_800_007_200, [9, 9, 9]))
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let (status, _) = api(&http, reqwest::Method::GET, &results, &bob_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, listed) = api(&http, reqwest::Method::GET, &results, &token).await;
    assert_eq!(status, StatusCode::OK);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let values: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aggregate_result"].clone())
        .collect();
    assert_eq!(
        values,
        [serde_json::json!([2, 2, 2]), serde_json::json!([4, 0, 2])]
    );

    let page = alice.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    let chart = between(
        &page.body,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"results-chart\"",
        "</svg>",
    );
    assert_eq!(chart.matches("<g class=\"bar\">").count(), 2, "{chart}");
    assert!(chart.contains("2027-01-15 08:00 · 6 reports · one: 2, two: 2, three or more: 2"));
    assert!(chart.contains("2027-01-15 09:00 · 6 reports · one: 4, two: 0, three or more: 2"));
    let table = between(&page.body, "<table id=\"results\">", "</table>");
    assert!(
        table.contains("<td class=\"result\">4, 0, 2</td>"),
        "{table}"
    );
}
