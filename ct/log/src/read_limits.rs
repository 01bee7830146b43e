//! Per-client rate limits on the monitoring (read) paths, as Sunlight's read server has them: a
//! client whose User-Agent carries contact information (an email address or a URL) gets a
//! budget of its own, keyed by that User-Agent; every other client shares one global budget,
//! so anonymous crawlers cannot crowd out monitors that say who they are. Over budget: 429
//! with `Retry-After`.
//!
//! Each budget is a GCRA token bucket whose state is one instant (its theoretical arrival
//! time), decided by `cairn_ratelimit::gcra` — the arithmetic the CA's ACME limits use — and
//! kept in memory: the read server's budgets are per process.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_ratelimit::gcra::{self, Limit, Tat};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

/// Above this many tracked clients, full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

/// `[read_limits]` of `cairn ct serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadLimits {
    /// Requests per second for each client that identifies itself (default 100).
    #[serde(default = "default_per_client")]
    pub per_client_per_second: u32,
    /// Burst for each identified client (default 200).
    #[serde(default = "default_per_client_burst")]
    pub per_client_burst: u32,
    /// Requests per second shared by every client without contact information (default 50).
    #[serde(default = "default_anonymous")]
    pub anonymous_per_second: u32,
    /// Burst of the shared budget (default 100).
    #[serde(default = "default_anonymous_burst")]
    pub anonymous_burst: u32,
}

fn default_per_client() -> u32 {
    100
}
fn default_per_client_burst() -> u32 {
    200
}
fn default_anonymous() -> u32 {
    50
}
fn default_anonymous_burst() -> u32 {
    100
}

impl ReadLimits {
    /// Every rate and burst must be at least 1.
    pub fn validate(&self) -> Result<(), String> {
        if [
            self.per_client_per_second,
            self.per_client_burst,
            self.anonymous_per_second,
            self.anonymous_burst,
        ]
        .contains(&0)
        {
            return Err("read_limits: rates and bursts must be at least 1".into());
        }
        Ok(())
    }
}

/// The budget a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    /// A User-Agent with contact information, by its SHA-256 (bounded memory per client).
    Identified([u8; 32]),
    /// Everyone else.
    Anonymous,
}

/// True if a User-Agent says how to reach its operator: an email address (`x@y.z`) or a URL.
pub fn has_contact_info(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("http://") || ua.contains("https://") {
        return true;
    }
    ua.split(|c: char| c.is_whitespace() || "()<>;,".contains(c))
        .any(|word| {
            let word = word.trim_start_matches("mailto:");
            word.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !domain.ends_with('.')
            })
        })
}

/// The shared limiter state.
#[derive(Debug)]
pub(crate) struct ReadLimiter {
    limits: ReadLimits,
    /// Theoretical arrival time of each budget: when its bucket is full again.
    tats: Mutex<HashMap<Client, Tat>>,
}

impl ReadLimiter {
    pub(crate) fn new(limits: ReadLimits) -> Arc<ReadLimiter> {
        Arc::new(ReadLimiter {
            limits,
            tats: Mutex::new(HashMap::new()),
        })
    }

    /// Charges one request of `client` at `now`; `Err(wait)` if over budget.
    fn charge(&self, client: Client, now: OffsetDateTime) -> Result<(), Duration> {
        let (rate, burst) = match client {
            Client::Identified(_) => (
                self.limits.per_client_per_second,
                self.limits.per_client_burst,
            ),
            Client::Anonymous => (
                self.limits.anonymous_per_second,
                self.limits.anonymous_burst,
            ),
        };
        let limit = Limit {
            burst: u64::from(burst.max(1)),
            count: u64::from(rate.max(1)),
            period: Duration::SECOND,
        };
        let mut tats = self.tats.lock().map_err(|_| Duration::SECOND)?;
        if tats.len() >= MAX_TRACKED {
            let now = Tat::from_datetime(now);
            tats.retain(|_, tat| *tat > now);
        }
        let decision = gcra::decide(now, tats.get(&client).copied(), &limit, 1);
        if !decision.allowed {
            return Err(decision.retry_after);
        }
        tats.insert(client, decision.new_tat);
        Ok(())
    }
}

/// The middleware: charges the request to its client's budget, or answers 429.
pub(crate) async fn limit(
    State(limiter): State<Arc<ReadLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let client = match request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        Some(ua) if has_contact_info(ua) => {
            Client::Identified(cairn_tlog::merkle::sha256(ua.as_bytes()))
        }
        _ => Client::Anonymous,
    };
    match limiter.charge(client, OffsetDateTime::now_utc()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let secs = wait.whole_seconds().max(0) + 1;
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({
                    "error": "rate limited: retry later, and put contact information \
                              (an email address or URL) in your User-Agent for a budget of your own"
                })
                .to_string(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_information_is_an_email_address_or_a_url() {
        for ua in [
            "monitor/1.0 (+https://example.org/monitor)",
            "crawler ops@example.org",
            "x (mailto:ct@example.net)",
            "<ops@example.org>",
        ] {
            assert!(has_contact_info(ua), "{ua}");
        }
        for ua in [
            "curl/8.5.0",
            "Go-http-client/1.1",
            "a@b",
            "user@",
            "@example.org",
            "",
        ] {
            assert!(!has_contact_info(ua), "{ua}");
        }
    }

    #[test]
    fn a_budget_allows_its_burst_then_refills_at_its_rate() {
        let l = ReadLimiter::new(ReadLimits {
            per_client_per_second: 10,
            per_client_burst: 3,
            anonymous_per_second: 1,
            anonymous_burst: 1,
        });
        let t0 = OffsetDateTime::now_utc();
        let me = || Client::Identified([1; 32]);
        for _ in 0..3 {
            assert!(l.charge(me(), t0).is_ok());
        }
        let wait = l.charge(me(), t0).unwrap_err();
        assert!(wait <= Duration::milliseconds(100), "{wait:?}");
        // Another identified client has its own budget; the anonymous one is separate too.
        assert!(l.charge(Client::Identified([2; 32]), t0).is_ok());
        assert!(l.charge(Client::Anonymous, t0).is_ok());
        assert!(l.charge(Client::Anonymous, t0).is_err());
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::milliseconds(100);
        assert!(l.charge(me(), t1).is_ok());
        assert!(l.charge(me(), t1).is_err());
    }
}
