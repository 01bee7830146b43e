//! The public statistics page on the public listener, as Let's Encrypt publishes its own:
//! `GET /stats` (server-rendered HTML with inline SVG charts; no script, no external assets) and
//! `GET /stats.json` (the same numbers).
//!
//! The numbers come from storage's counters ([`StatsStorage`], kept at issuance and revocation
//! time, so a read is a few thousand small rows, never a scan of the certificates), and are
//! cached for [`CACHE_FOR`]: a flood of requests costs one read a minute. [`StatsPage::start`]
//! rebuilds the counters once when storage says they were never built, and prunes them hourly.
//!
//! What the page shows: certificates active (unexpired, not revoked) and registered domains
//! active, average daily issuance and issuance per second over the last 90 days, year over year
//! (the last 365 days against the 365 before), and certificates issued per day over the last
//! year as charts. Left out for now, as deploy/README.md says: the SLI table (Prometheus holds
//! it, not the CA), CT log size and DAP reports aggregated (other services' storage).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_api::{IssuanceStats, SaError, StatsStorage};
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};
use tokio::sync::Mutex;

/// How long a snapshot of the numbers is served before storage is read again.
pub const CACHE_FOR: Duration = Duration::from_secs(60);

/// How often the counters are pruned ([`StatsStorage::prune_stats`]).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Days the averages are taken over.
const AVERAGE_DAYS: i64 = 90;

/// Days the charts and the year-over-year figure cover.
const YEAR_DAYS: i64 = 365;

/// The page's state: storage and the cached snapshot.
pub struct StatsPage {
    sa: Arc<dyn StatsStorage>,
    cache: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    cache_for: Duration,
}

impl std::fmt::Debug for StatsPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsPage")
            .field("cache_for", &self.cache_for)
            .finish()
    }
}

impl StatsPage {
    /// The page over `sa`, caching each snapshot for `cache_for` (the server uses
    /// [`CACHE_FOR`]), without any background work.
    pub fn new(sa: Arc<dyn StatsStorage>, cache_for: Duration) -> Arc<StatsPage> {
        Arc::new(StatsPage {
            sa,
            cache: Mutex::new(None),
            cache_for,
        })
    }

    /// The page the server runs: rebuilds the counters first if storage says they were never
    /// built (a database with certificates from before the counters existed), then prunes them
    /// every hour in the background.
    ///
    /// # Errors
    /// Storage failures of the rebuild.
    pub async fn start(sa: Arc<dyn StatsStorage>) -> Result<Arc<StatsPage>, SaError> {
        if !sa.stats_recomputed().await? {
            tracing::info!("building the statistics counters from the certificates");
            sa.recompute_stats(OffsetDateTime::now_utc()).await?;
        }
        let page = StatsPage::new(sa.clone(), CACHE_FOR);
        tokio::spawn(async move {
            loop {
                if let Err(e) = sa.prune_stats(OffsetDateTime::now_utc()).await {
                    tracing::warn!(error = %e, "pruning the statistics counters");
                }
                tokio::time::sleep(PRUNE_EVERY).await;
            }
        });
        Ok(page)
    }

    /// The current snapshot, from the cache when fresh.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, SaError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, snap)) = cache.as_ref()
            && at.elapsed() < self.cache_for
        {
            return Ok(snap.clone());
        }
        let now = OffsetDateTime::now_utc();
        let since = now.date() - time::Duration::days(2 * YEAR_DAYS);
        let stats = self.sa.get_issuance_stats(now, since).await?;
        let snap = Arc::new(Snapshot::new(&stats, now));
        *cache = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }
}

/// `/stats` and `/stats.json` over `page`; merge it into the public router.
pub fn router(page: Arc<StatsPage>) -> Router {
    Router::new()
        .route("/stats", get(html))
        .route("/stats.json", get(json))
        .with_state(page)
}

/// The numbers as `/stats.json` serves them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When they were read (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// Certificates unexpired and not revoked.
    pub active_certificates: u64,
    /// Registered domains with an unexpired certificate.
    pub active_domains: u64,
    /// Mean certificates issued per day over the last 90 days (today included), or since the
    /// first issuance if that is later.
    pub average_daily_issuance: f64,
    /// `average_daily_issuance` per second.
    pub issuance_per_second: f64,
    /// Certificates issued in the last 365 days (today included).
    pub issued_last_year: u64,
    /// Certificates issued in the 365 days before those.
    pub issued_year_before: u64,
    /// Change from `issued_year_before` to `issued_last_year`, in percent (none while the year
    /// before issued nothing).
    pub year_over_year_percent: Option<f64>,
    /// Certificates issued per UTC day over the last 365 days, oldest first, every day listed.
    pub daily_issuance: Vec<DailyIssuance>,
}

/// One day of issuance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyIssuance {
    /// The UTC day (`YYYY-MM-DD`).
    pub date: String,
    /// Certificates issued that day.
    pub issued: u64,
}

impl Snapshot {
    /// Works out the page's figures from storage's counters at `now`.
    pub fn new(stats: &IssuanceStats, now: OffsetDateTime) -> Snapshot {
        let today = now.date();
        let days_ago = |d: Date| (today - d).whole_days();
        let issued_within = |from: i64, to: i64| -> u64 {
            stats
                .daily_issuance
                .iter()
                .filter(|(d, _)| (from..to).contains(&days_ago(*d)))
                .map(|(_, n)| *n)
                .sum()
        };
        let first = stats
            .daily_issuance
            .iter()
            .map(|(d, _)| days_ago(*d))
            .filter(|ago| *ago >= 0)
            .max();
        let average_daily_issuance = match first {
            Some(first) => {
                let days = (first + 1).min(AVERAGE_DAYS);
                issued_within(0, days) as f64 / days as f64
            }
            None => 0.0,
        };
        let issued_last_year = issued_within(0, YEAR_DAYS);
        let issued_year_before = issued_within(YEAR_DAYS, 2 * YEAR_DAYS);
        let year_over_year_percent = (issued_year_before > 0).then(|| {
            (issued_last_year as f64 - issued_year_before as f64) * 100.0
                / issued_year_before as f64
        });
        let daily_issuance = (0..YEAR_DAYS)
            .rev()
            .map(|ago| {
                let date = today - time::Duration::days(ago);
                DailyIssuance {
                    date: date.to_string(),
                    issued: issued_within(ago, ago + 1),
                }
            })
            .collect();
        Snapshot {
            generated_at: now,
            active_certificates: stats.active_certificates,
            active_domains: stats.active_domains,
            average_daily_issuance,
            issuance_per_second: average_daily_issuance / 86_400.0,
            issued_last_year,
            issued_year_before,
            year_over_year_percent,
            daily_issuance,
        }
    }
}

/// `GET /stats.json`.
async fn json(State(page): State<Arc<StatsPage>>) -> Response {
    match page.snapshot().await {
        Ok(snap) => {
            let mut resp = axum::Json(&*snap).into_response();
            cache_headers(&mut resp);
            resp
        }
        Err(e) => storage_failed(&e),
    }
}

/// `GET /stats`.
async fn html(State(page): State<Arc<StatsPage>>) -> Response {
    match page.snapshot().await {
        Ok(snap) => {
            let mut resp = axum::response::Html(render(&snap)).into_response();
            cache_headers(&mut resp);
            resp
        }
        Err(e) => storage_failed(&e),
    }
}

fn cache_headers(resp: &mut Response) {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
}

fn storage_failed(e: &SaError) -> Response {
    tracing::error!(error = %e, "reading the statistics counters");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

/// A count with thousands separators: `1234567` → `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The HTML page. Every value in it is a number or a date this module formatted, so nothing
/// needs escaping.
pub fn render(s: &Snapshot) -> String {
    let yoy = match s.year_over_year_percent {
        Some(p) => format!("{p:+.1} %"),
        None => "n/a (no issuance in the year before)".to_owned(),
    };
    let per_day: Vec<f64> = s.daily_issuance.iter().map(|d| d.issued as f64).collect();
    let per_second: Vec<f64> = per_day.iter().map(|n| n / 86_400.0).collect();
    let first = s.daily_issuance.first().map_or("", |d| d.date.as_str());
    let last = s.daily_issuance.last().map_or("", |d| d.date.as_str());
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cairn statistics</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 56em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3em 1em; text-align: left; border-bottom: 1px solid #ddd; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
svg {{ background: #fafafa; border: 1px solid #ddd; }}
</style>
</head>
<body>
<h1>Statistics</h1>
<p>As of <time id="generated-at">{generated}</time> (updated every minute).</p>
<table>
<tr><th>Certificates active</th><td class="n" id="active-certificates">{certs}</td></tr>
<tr><th>Registered domains active</th><td class="n" id="active-domains">{domains}</td></tr>
<tr><th>Average daily issuance (last 90 days)</th><td class="n" id="average-daily-issuance">{avg:.1}</td></tr>
<tr><th>Issuance per second</th><td class="n" id="issuance-per-second">{per_sec:.6}</td></tr>
<tr><th>Issued in the last 365 days</th><td class="n" id="issued-last-year">{last_year}</td></tr>
<tr><th>Issued in the 365 days before</th><td class="n" id="issued-year-before">{year_before}</td></tr>
<tr><th>Year over year</th><td class="n" id="year-over-year">{yoy}</td></tr>
</table>
<h2>Certificates issued per day</h2>
{chart_day}
<h2>Certificates issued per second (daily mean)</h2>
{chart_sec}
<p>{first} to {last}, UTC days. The same numbers: <a href="stats.json">stats.json</a>.</p>
</body>
</html>
"#,
        generated = s
            .generated_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        certs = grouped(s.active_certificates),
        domains = grouped(s.active_domains),
        avg = s.average_daily_issuance,
        per_sec = s.issuance_per_second,
        last_year = grouped(s.issued_last_year),
        year_before = grouped(s.issued_year_before),
        chart_day = bar_chart("chart-per-day", &per_day, |v| format!("{v:.0}")),
        chart_sec = bar_chart("chart-per-second", &per_second, |v| format!("{v:.6}")),
    );
    page
}

/// An inline SVG bar chart of `values` (one bar per day), with its maximum labelled.
fn bar_chart(id: &str, values: &[f64], label: impl Fn(f64) -> String) -> String {
    const W: f64 = 730.0;
    const H: f64 = 160.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let bar = if values.is_empty() {
        0.0
    } else {
        W / values.len() as f64
    };
    let mut svg = format!(
        r#"<svg id="{id}" role="img" width="{W}" height="{h}" viewBox="0 0 {W} {h}" xmlns="http://www.w3.org/2000/svg"><title>maximum {max_label}</title>"#,
        h = H + 20.0,
        max_label = label(max),
    );
    if max > 0.0 {
        for (i, v) in values.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let height = (v / max * H).max(1.0);
            let _ = write!(
                svg,
                r##"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{height:.2}" fill="#2a6ebb"/>"##,
                x = i as f64 * bar,
                y = H - height,
                w = bar.max(1.0),
            );
        }
    }
    let _ = write!(
        svg,
        r##"<text x="4" y="{ty}" font-size="12" fill="#555">max {max_label}</text></svg>"##,
        ty = H + 15.0,
        max_label = label(max),
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const NOW: OffsetDateTime = datetime!(2026-05-10 15:00 UTC);

    #[test]
    fn nothing_issued_yet() {
        let s = Snapshot::new(&IssuanceStats::default(), NOW);
        assert_eq!(s.average_daily_issuance, 0.0);
        assert_eq!(s.year_over_year_percent, None);
        assert_eq!(s.daily_issuance.len(), 365);
        assert_eq!(s.daily_issuance.last().unwrap().date, "2026-05-10");
        assert!(s.daily_issuance.iter().all(|d| d.issued == 0));
        let page = render(&s);
        assert!(page.contains(r#"<td class="n" id="active-certificates">0</td>"#));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn averages_start_at_the_first_issuance_and_cover_at_most_90_days() {
        // Issuing since 4 days ago (5 days, today included): 10 + 20 + 30 = 60 / 5.
        let stats = IssuanceStats {
            active_certificates: 1_234_567,
            active_domains: 89,
            daily_issuance: vec![
                (date!(2026 - 05 - 06), 10),
                (date!(2026 - 05 - 08), 20),
                (date!(2026 - 05 - 10), 30),
            ],
        };
        let s = Snapshot::new(&stats, NOW);
        assert_eq!(s.average_daily_issuance, 12.0);
        assert_eq!(s.issuance_per_second, 12.0 / 86_400.0);
        assert_eq!(s.issued_last_year, 60);
        let today = s.daily_issuance.last().unwrap();
        assert_eq!((today.date.as_str(), today.issued), ("2026-05-10", 30));
        let page = render(&s);
        assert!(page.contains(r#"id="active-certificates">1,234,567<"#));
        assert!(page.contains(r#"id="average-daily-issuance">12.0<"#));
        assert!(page.contains("<title>maximum 30</title>"));

        // Issuing for a long time: the last 90 days only.
        let mut long = stats.clone();
        long.daily_issuance.insert(0, (date!(2025 - 01 - 01), 900));
        let s = Snapshot::new(&long, NOW);
        assert_eq!(s.average_daily_issuance, 60.0 / 90.0);
    }

    #[test]
    fn year_over_year_compares_two_365_day_windows() {
        let stats = IssuanceStats {
            daily_issuance: vec![
                (date!(2025 - 03 - 01), 40),  // 435 days ago: the year before
                (date!(2025 - 05 - 11), 60),  // 364 days ago: the last year
                (date!(2026 - 05 - 10), 90),  // today
                (date!(2024 - 05 - 10), 999), // 730 days ago: neither
            ],
            ..IssuanceStats::default()
        };
        let s = Snapshot::new(&stats, NOW);
        assert_eq!((s.issued_last_year, s.issued_year_before), (150, 40));
        assert_eq!(s.year_over_year_percent, Some(275.0));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(7_000_000), "7,000,000");
    }
}
