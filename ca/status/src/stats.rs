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
//! year as charts; the SLI table per endpoint over the last 90 days or since the first day
//! counted (events from [`SliTally`], stored per day by [`StatsStorage::add_sli_counts`]); each
//! CT log's tree size and growth (its in-memory committed size, recorded per day); and the
//! reports the DAP leader aggregated (one indexed sum in its datastore). The other services
//! are reached through [`Sources`], plain functions the binary fills in, so this crate
//! depends on neither the CT log nor the DAP aggregator.

use crate::sli::SliTally;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_api::{CtLogSize, IssuanceStats, SaError, SliCount, StatsStorage};
use serde::Serialize;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};
use tokio::sync::Mutex;

/// How long a snapshot of the numbers is served before storage is read again.
pub const CACHE_FOR: Duration = Duration::from_secs(60);

/// How often the counters are pruned ([`StatsStorage::prune_stats`]).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the SLI events and CT log sizes are stored when nobody reads the page.
const RECORD_EVERY: Duration = Duration::from_secs(60);

/// Days the SLI table covers (today included).
const SLI_DAYS: i64 = 90;

/// A figure another service of this process gives on demand (a count from its own storage).
pub type Figure =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

/// What the page shows beside storage's issuance counters, from the other services of this
/// process; each is optional (a section without a source says so).
#[derive(Clone, Default)]
pub struct Sources {
    /// The SLI events of the listeners (see [`SliTally::count`]).
    pub sli: Option<Arc<SliTally>>,
    /// The CT logs this process runs: name, and its current tree size (cheap: no I/O).
    pub ct_logs: Vec<(String, Arc<dyn Fn() -> u64 + Send + Sync>)>,
    /// Reports the DAP leader has aggregated.
    pub dap_reports_aggregated: Option<Figure>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let logs: Vec<&str> = self.ct_logs.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Sources")
            .field("sli", &self.sli.is_some())
            .field("ct_logs", &logs)
            .field("dap", &self.dap_reports_aggregated.is_some())
            .finish()
    }
}

/// Days the averages are taken over.
const AVERAGE_DAYS: i64 = 90;

/// Days the charts and the year-over-year figure cover.
const YEAR_DAYS: i64 = 365;

/// The page's state: storage and the cached snapshot.
pub struct StatsPage {
    sa: Arc<dyn StatsStorage>,
    sources: Sources,
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
    pub fn new(sa: Arc<dyn StatsStorage>, sources: Sources, cache_for: Duration) -> Arc<StatsPage> {
        Arc::new(StatsPage {
            sa,
            sources,
            cache: Mutex::new(None),
            cache_for,
        })
    }

    /// The page the server runs: rebuilds the counters first if storage says they were never
    /// built (a database with certificates from before the counters existed), then in the
    /// background stores the SLI events and CT log sizes every minute and prunes the counters
    /// every hour.
    ///
    /// # Errors
    /// Storage failures of the rebuild.
    pub async fn start(
        sa: Arc<dyn StatsStorage>,
        sources: Sources,
    ) -> Result<Arc<StatsPage>, SaError> {
        if !sa.stats_recomputed().await? {
            tracing::info!("building the statistics counters from the certificates");
            sa.recompute_stats(OffsetDateTime::now_utc()).await?;
        }
        let page = StatsPage::new(sa.clone(), sources, CACHE_FOR);
        let background = Arc::downgrade(&page);
        tokio::spawn(async move {
            let mut pruned: Option<Instant> = None;
            loop {
                if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    if let Err(e) = sa.prune_stats(OffsetDateTime::now_utc()).await {
                        tracing::warn!(error = %e, "pruning the statistics counters");
                    }
                    pruned = Some(Instant::now());
                }
                tokio::time::sleep(RECORD_EVERY).await;
                let Some(page) = background.upgrade() else {
                    return;
                };
                if let Err(e) = page.record(OffsetDateTime::now_utc().date()).await {
                    tracing::warn!(error = %e, "storing the SLI events and CT log sizes");
                }
            }
        });
        Ok(page)
    }

    /// Stores the SLI events counted since the last time (put back on failure) and the CT
    /// logs' current sizes under day `today`.
    async fn record(&self, today: Date) -> Result<(), SaError> {
        if let Some(tally) = &self.sources.sli {
            let taken = tally.take();
            if let Err(e) = self.sa.add_sli_counts(today, &taken).await {
                tally.restore(taken);
                return Err(e);
            }
        }
        for (name, size) in &self.sources.ct_logs {
            self.sa.put_ct_log_size(today, name, size()).await?;
        }
        Ok(())
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
        let today = now.date();
        self.record(today).await?;
        let since = today - time::Duration::days(2 * YEAR_DAYS);
        let stats = self.sa.get_issuance_stats(now, since).await?;
        let (slis, sli_since) = self
            .sa
            .get_sli_counts(today - time::Duration::days(SLI_DAYS - 1))
            .await?;
        let ct_sizes = self
            .sa
            .get_ct_log_sizes(today - time::Duration::days(YEAR_DAYS - 1))
            .await?;
        let dap_reports_aggregated = match &self.sources.dap_reports_aggregated {
            Some(figure) => match figure().await {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the DAP reports aggregated");
                    None
                }
            },
            None => None,
        };
        let others = Others {
            slis,
            sli_since,
            ct_sizes,
            dap_reports_aggregated,
        };
        let snap = Arc::new(Snapshot::new(&stats, &others, now));
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
    /// The first day the SLI table counts (`YYYY-MM-DD`): 89 days ago, or the first day with
    /// events if later; none before any event was stored.
    pub sli_since: Option<String>,
    /// The SLI per listener and endpoint since `sli_since`, by listener then endpoint.
    pub slis: Vec<Sli>,
    /// Each CT log's size, by name.
    pub ct_logs: Vec<CtLogStats>,
    /// Reports the DAP leader has aggregated (within its tasks' retention); none when DAP
    /// does not run in this process or its datastore did not answer.
    pub dap_reports_aggregated: Option<u64>,
}

/// What [`Snapshot::new`] takes besides the issuance counters.
#[derive(Debug, Clone, Default)]
pub struct Others {
    /// SLI events per endpoint over the table's days, and the first day with any.
    pub slis: Vec<SliCount>,
    /// The first day with SLI events.
    pub sli_since: Option<Date>,
    /// The CT log sizes recorded over the last year.
    pub ct_sizes: Vec<CtLogSize>,
    /// Reports the DAP leader has aggregated.
    pub dap_reports_aggregated: Option<u64>,
}

/// One endpoint's service-level indicator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sli {
    /// The listener (`acme`, `public`, `dap`).
    pub listener: String,
    /// The route template.
    pub endpoint: String,
    /// Requests that were not the client's mistake (any answer but a 4xx).
    pub valid: u64,
    /// Of those, the ones the service failed (a 5xx).
    pub errors: u64,
    /// `(valid - errors) / valid` in percent; none without valid requests.
    pub success_percent: Option<f64>,
}

/// One CT log's size and growth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CtLogStats {
    /// The log's name.
    pub name: String,
    /// Entries in its latest recorded checkpoint.
    pub tree_size: u64,
    /// Entries added since the last size recorded on an earlier day (none without one).
    pub added_since_previous_day: Option<u64>,
    /// Mean entries added per day between the first and the last recorded day of the last
    /// year (none with a single day recorded).
    pub growth_per_day: Option<f64>,
    /// The size recorded per UTC day, oldest first (days without a record left out).
    pub daily: Vec<CtLogDay>,
}

/// A CT log's size on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CtLogDay {
    /// The UTC day (`YYYY-MM-DD`).
    pub date: String,
    /// The largest size seen that day.
    pub tree_size: u64,
}

impl Sli {
    fn new(c: &SliCount) -> Sli {
        Sli {
            listener: c.listener.clone(),
            endpoint: c.endpoint.clone(),
            valid: c.valid,
            errors: c.errors,
            success_percent: (c.valid > 0)
                .then(|| c.valid.saturating_sub(c.errors) as f64 * 100.0 / c.valid as f64),
        }
    }
}

/// Groups `sizes` (by log, then day, as storage returns them) into one entry per log.
fn ct_log_stats(sizes: &[CtLogSize]) -> Vec<CtLogStats> {
    sizes
        .chunk_by(|a, b| a.log == b.log)
        .filter_map(|days| {
            let (first, last) = (days.first()?, days.last()?);
            let span = (last.day - first.day).whole_days();
            Some(CtLogStats {
                name: last.log.clone(),
                tree_size: last.tree_size,
                added_since_previous_day: days
                    .iter()
                    .rev()
                    .nth(1)
                    .map(|previous| last.tree_size.saturating_sub(previous.tree_size)),
                growth_per_day: (span > 0)
                    .then(|| last.tree_size.saturating_sub(first.tree_size) as f64 / span as f64),
                daily: days
                    .iter()
                    .map(|d| CtLogDay {
                        date: d.day.to_string(),
                        tree_size: d.tree_size,
                    })
                    .collect(),
            })
        })
        .collect()
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
    /// Works out the page's figures from storage's counters and the other services' at `now`.
    pub fn new(stats: &IssuanceStats, others: &Others, now: OffsetDateTime) -> Snapshot {
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
            sli_since: others.sli_since.map(|d| d.to_string()),
            slis: others.slis.iter().map(Sli::new).collect(),
            ct_logs: ct_log_stats(&others.ct_sizes),
            dap_reports_aggregated: others.dap_reports_aggregated,
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

/// The HTML page. Every value in it is a number or a date this module formatted, or a name
/// escaped by [`escape`].
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
<p>{first} to {last}, UTC days.</p>
{slis}
{ct}
<h2>Privacy-preserving measurement (DAP)</h2>
<table>
<tr><th>Reports aggregated</th><td class="n" id="dap-reports-aggregated">{dap}</td></tr>
</table>
<p>The same numbers: <a href="stats.json">stats.json</a>.</p>
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
        slis = sli_table(s),
        ct = ct_section(s),
        dap = s
            .dap_reports_aggregated
            .map_or_else(|| "n/a".to_owned(), grouped),
    );
    page
}

/// The SLI table. Listener names and route templates come from the binary's routers (fixed
/// strings such as `/acme/order/{id}`), not from clients, but they are escaped all the same.
fn sli_table(s: &Snapshot) -> String {
    let mut out = String::from("<h2>Service-level indicators</h2>\n");
    let Some(since) = &s.sli_since else {
        out.push_str("<p id=\"sli-none\">No requests counted yet.</p>\n");
        return out;
    };
    let _ = writeln!(
        out,
        "<p>Share of requests answered without a server error since <time id=\"sli-since\">{}</time> \
         (at most 90 days); requests refused as the client's mistake (4xx) do not count.</p>",
        escape(since)
    );
    out.push_str(
        "<table id=\"sli\">\n<tr><th>Listener</th><th>Endpoint</th><th>Requests</th>\
         <th>Server errors</th><th>Success</th></tr>\n",
    );
    for sli in &s.slis {
        let percent = sli
            .success_percent
            .map_or_else(|| "n/a".to_owned(), |p| format!("{p:.4} %"));
        let _ = writeln!(
            out,
            "<tr data-listener=\"{l}\" data-endpoint=\"{e}\"><td>{l}</td><td><code>{e}</code></td>\
             <td class=\"n valid\">{valid}</td><td class=\"n errors\">{errors}</td>\
             <td class=\"n success\">{percent}</td></tr>",
            l = escape(&sli.listener),
            e = escape(&sli.endpoint),
            valid = grouped(sli.valid),
            errors = grouped(sli.errors),
        );
    }
    out.push_str("</table>\n");
    out
}

/// The CT logs' sizes, growth, and a chart of each log's size per day.
fn ct_section(s: &Snapshot) -> String {
    let mut out = String::from("<h2>Certificate Transparency logs</h2>\n");
    if s.ct_logs.is_empty() {
        out.push_str("<p id=\"ct-none\">No CT log runs here.</p>\n");
        return out;
    }
    out.push_str(
        "<table id=\"ct-logs\">\n<tr><th>Log</th><th>Entries</th>\
         <th>Added since the day before</th><th>Growth per day</th></tr>\n",
    );
    for log in &s.ct_logs {
        let _ = writeln!(
            out,
            "<tr data-log=\"{name}\"><td>{name}</td><td class=\"n size\">{size}</td>\
             <td class=\"n added\">{added}</td><td class=\"n growth\">{growth}</td></tr>",
            name = escape(&log.name),
            size = grouped(log.tree_size),
            added = log
                .added_since_previous_day
                .map_or_else(|| "n/a".to_owned(), grouped),
            growth = log
                .growth_per_day
                .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.1}")),
        );
    }
    out.push_str("</table>\n");
    for (i, log) in s.ct_logs.iter().enumerate() {
        let sizes: Vec<f64> = log.daily.iter().map(|d| d.tree_size as f64).collect();
        let _ = writeln!(
            out,
            "<h3>{} entries per day</h3>\n{}",
            escape(&log.name),
            bar_chart(&format!("chart-ct-{i}"), &sizes, |v| format!("{v:.0}"))
        );
    }
    out
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
        let s = Snapshot::new(&IssuanceStats::default(), &Others::default(), NOW);
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
        let s = Snapshot::new(&stats, &Others::default(), NOW);
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
        let s = Snapshot::new(&long, &Others::default(), NOW);
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
        let s = Snapshot::new(&stats, &Others::default(), NOW);
        assert_eq!((s.issued_last_year, s.issued_year_before), (150, 40));
        assert_eq!(s.year_over_year_percent, Some(275.0));
    }

    #[test]
    fn slis_ct_logs_and_dap_reports() {
        let count = |endpoint: &str, valid, errors| SliCount {
            listener: "acme".into(),
            endpoint: endpoint.into(),
            valid,
            errors,
        };
        let size = |day, log: &str, tree_size| CtLogSize {
            day,
            log: log.into(),
            tree_size,
        };
        let others = Others {
            slis: vec![
                count("/acme/finalize", 20_000, 3),
                count("/acme/key-change", 0, 0),
                count("/acme/new-order", 7, 0),
            ],
            sli_since: Some(date!(2026 - 04 - 01)),
            ct_sizes: vec![
                size(date!(2026 - 05 - 01), "birch", 100),
                size(date!(2026 - 05 - 09), "birch", 900),
                size(date!(2026 - 05 - 10), "birch", 940),
                size(date!(2026 - 05 - 10), "oak", 5),
            ],
            dap_reports_aggregated: Some(12_345),
        };
        let s = Snapshot::new(&IssuanceStats::default(), &others, NOW);
        assert_eq!(s.sli_since.as_deref(), Some("2026-04-01"));
        assert_eq!(s.slis[0].success_percent, Some(99.985));
        assert_eq!(s.slis[1].success_percent, None, "no valid requests");
        assert_eq!(s.slis[2].success_percent, Some(100.0));
        let birch = &s.ct_logs[0];
        assert_eq!((birch.name.as_str(), birch.tree_size), ("birch", 940));
        assert_eq!(birch.added_since_previous_day, Some(40));
        assert_eq!(birch.growth_per_day, Some(840.0 / 9.0));
        assert_eq!(birch.daily.len(), 3);
        let oak = &s.ct_logs[1];
        assert_eq!((oak.tree_size, oak.added_since_previous_day), (5, None));
        assert_eq!(oak.growth_per_day, None);

        let page = render(&s);
        assert!(page.contains(r#"<time id="sli-since">2026-04-01</time>"#));
        assert!(page.contains(
            r#"<code>/acme/finalize</code></td><td class="n valid">20,000</td><td class="n errors">3</td><td class="n success">99.9850 %</td>"#
        ), "{page}");
        assert!(page.contains(r#"<tr data-log="birch"><td>birch</td><td class="n size">940</td><td class="n added">40</td><td class="n growth">93.3</td>"#));
        assert!(page.contains(r#"id="dap-reports-aggregated">12,345<"#));
        assert!(page.contains(r#"<svg id="chart-ct-0""#));

        let empty = render(&Snapshot::new(
            &IssuanceStats::default(),
            &Others::default(),
            NOW,
        ));
        assert!(empty.contains(r#"id="sli-none""#));
        assert!(empty.contains(r#"id="ct-none""#));
        assert!(empty.contains(r#"id="dap-reports-aggregated">n/a<"#));
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(7_000_000), "7,000,000");
    }
}
