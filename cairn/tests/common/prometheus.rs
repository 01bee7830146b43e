//! A real Prometheus (Debian `prometheus`; `.ci/run` installs it) scraping one target with
//! every rules file of `deploy/prometheus/` loaded, and its HTTP query API.
//!
//! The metrics recorder is process-wide, so a test binary that starts Prometheus holds one
//! such test: another test's requests in the same process would show in its counts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A Prometheus process, stopped on drop.
pub struct Prometheus {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(program: PathBuf, target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
        let rule_files: Vec<String> = ["slo.rules.yml", "slo-alerts.rules.yml", "alerts.rules.yml"]
            .iter()
            .map(|f| format!("  - {}", rules.join(f).display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\n\
             scrape_configs:\n  - job_name: cairn-ca\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rule_files.join("\n")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = super::free_port();
        let child = tokio::process::Command::new(program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        p.wait_for("up{job=\"cairn-ca\"}", |v| v == 1.0).await;
        p
    }

    /// The instant query's values (one per series).
    pub async fn query(&self, q: &str) -> Vec<f64> {
        let Ok(resp) = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/query?query={}",
                self.url,
                percent_encode(q)
            ))
            .send()
            .await
        else {
            return vec![];
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            return vec![];
        };
        assert_eq!(body["status"], "success", "{q}: {body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            .collect()
    }

    /// Waits until `q` returns one value that `ok` accepts; returns it.
    pub async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.query(q).await;
            if let [v] = got[..]
                && ok(v)
            {
                return v;
            }
            assert!(Instant::now() < deadline, "{q} never held: last {got:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// `q` percent-encoded for a URL query (everything but unreserved characters).
fn percent_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
