//! The counters behind the public statistics page ([`StatsStorage`]): certificates issued per
//! day (the day of their notBefore, which the RA backdates, an hour by default, as a count from
//! CT logs would date them; the recompute job can date them no other way), and per hour of expiry the unrevoked certificates and the registered domains whose latest
//! certificate expires then (migration `0007_stats`).
//!
//! Why counters: "active certificates" asked of the certificates table is a scan of every
//! unexpired row (millions at Let's Encrypt's scale), and "active domains" a scan plus a public
//! suffix lookup per name. Instead, the transaction that issues a certificate
//! ([`record_issuance!`], called by `finalize_order`) adds it to the counters, and the one that
//! revokes it ([`record_revocation!`]) takes it out, so the page reads at most a few thousand
//! small rows: the expiry hours not yet past (at most the longest validity, 2,160 hours for 90
//! days, times [`SHARDS`]) and the days asked for.
//!
//! Contention: every issuance adds to the same day and, within an hour, the same expiry hour.
//! On PostgreSQL a single counter row would make concurrent issuances wait for each other's row
//! lock until commit, so each counter is split over [`SHARDS`] rows (picked from the serial) and
//! readers sum them. Deadlocks: a transaction locks its domain rows in name order, then its day
//! row, then its expiry hours in ascending order, so two issuances never wait for each other in
//! a cycle.
//!
//! Precision: "active" is to the hour (a certificate counts until the end of the hour in which
//! it expires). Revocation takes a certificate out of the active certificates, not its domains
//! out of the active domains (as Let's Encrypt counts domains with an unexpired certificate).
//! [`StatsStorage::recompute_stats`] rebuilds everything from the certificates table: on
//! start-up for a database that had certificates before the counters existed.
//!
//! Beside those, two small per-day tables the page fills itself (migration `0008_ops_stats`):
//! the SLI events each process counted ([`StatsStorage::add_sli_counts`], one row per endpoint
//! and day, added to every minute) and each CT log's tree size per day. Neither can be rebuilt
//! from other data, so the recompute job leaves them alone.

use crate::sql::{Failure, SqlStorage};
use crate::{CtLogSize, IssuanceStats, SaResult, SliCount, StatsStorage};
use async_trait::async_trait;
use cairn_core::{Certificate, Identifier, IdentifierType};
use cairn_db::{Dialect, on_read, on_write, query_builder};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::{Date, Duration, OffsetDateTime};

/// Rows each counter is split over (see the module documentation).
pub(crate) const SHARDS: i64 = 8;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Certificates read per page by the recompute job.
const RECOMPUTE_PAGE: i64 = 5_000;

/// Domain rows per `INSERT` in the recompute job (2 parameters each).
const DOMAINS_PER_INSERT: usize = 500;

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The unix hour a time in microseconds falls in.
pub(crate) fn hour_of(us: i64) -> i64 {
    us.div_euclid(MICROS_PER_HOUR)
}

/// The unix day a time in microseconds falls in.
pub(crate) fn day_of(us: i64) -> i64 {
    us.div_euclid(MICROS_PER_DAY)
}

fn unix_day(date: Date) -> i64 {
    (date - OffsetDateTime::UNIX_EPOCH.date()).whole_days()
}

fn date_of_day(day: i64) -> Option<Date> {
    OffsetDateTime::UNIX_EPOCH
        .date()
        .checked_add(Duration::days(day))
}

/// The registered domain (public suffix + one label, per the list built into the `psl` crate,
/// private section included) of a DNS identifier; a name that is itself a public suffix stands
/// for itself. The same rule as the rate limits' (`cairn-ratelimit`).
pub(crate) fn registered_domain(name: &str) -> String {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let base = lower.strip_prefix("*.").unwrap_or(&lower);
    match psl::domain_str(base) {
        Some(domain) => domain.to_owned(),
        None => base.to_owned(),
    }
}

/// The registered domains a certificate names (IP identifiers have none).
fn registered_domains(identifiers: &[Identifier]) -> BTreeSet<String> {
    identifiers
        .iter()
        .filter(|i| i.typ == IdentifierType::Dns)
        .map(|i| registered_domain(&i.value))
        .collect()
}

/// The shard a certificate's counter changes go to: spread by its (random) serial.
fn shard_of(serial: &str) -> i64 {
    serial
        .bytes()
        .map(i64::from)
        .sum::<i64>()
        .rem_euclid(SHARDS)
}

/// What issuing one certificate changes in the counters, worked out before the write so the
/// transaction only runs statements ([`record_issuance!`]).
pub(crate) struct IssuanceDelta {
    pub(crate) day: i64,
    pub(crate) shard: i64,
    pub(crate) not_after: i64,
    /// Whether it counts as active (it is not stored revoked).
    pub(crate) counts: bool,
    /// In name order: the order the rows are locked in.
    pub(crate) domains: BTreeSet<String>,
    /// Reads a domain's latest notAfter, locking the row on PostgreSQL.
    pub(crate) select_domain: &'static str,
}

impl IssuanceDelta {
    pub(crate) fn new(cert: &Certificate, dialect: Dialect) -> IssuanceDelta {
        IssuanceDelta {
            day: day_of(micros(cert.not_before)),
            shard: shard_of(cert.serial.as_str()),
            not_after: micros(cert.not_after),
            counts: cert.revocation.is_none(),
            domains: registered_domains(&cert.identifiers),
            select_domain: match dialect {
                Dialect::Postgres => {
                    "SELECT not_after FROM stats_domains WHERE domain = $1 FOR UPDATE"
                }
                _ => "SELECT not_after FROM stats_domains WHERE domain = $1",
            },
        }
    }
}

/// Adds one issuance ([`IssuanceDelta`] `$delta`) to the counters, inside the write `$conn`.
macro_rules! record_issuance {
    ($conn:ident, $delta:expr) => {{
        let delta: &$crate::stats::IssuanceDelta = $delta;
        let hour = $crate::stats::hour_of(delta.not_after);
        // Expiry hour → (certificates, domains) to add; applied last, in hour order.
        let mut bumps: ::std::collections::BTreeMap<i64, (i64, i64)> =
            ::std::collections::BTreeMap::new();
        if delta.counts {
            bumps.entry(hour).or_default().0 += 1;
        }
        for domain in &delta.domains {
            let inserted = sqlx::query(
                "INSERT INTO stats_domains (domain, not_after) VALUES ($1, $2) \
                 ON CONFLICT (domain) DO NOTHING",
            )
            .bind(domain)
            .bind(delta.not_after)
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            if inserted == 1 {
                bumps.entry(hour).or_default().1 += 1;
                continue;
            }
            let old: i64 = sqlx::query_scalar(delta.select_domain)
                .bind(domain)
                .fetch_one(&mut *$conn)
                .await?;
            if old < delta.not_after {
                sqlx::query("UPDATE stats_domains SET not_after = $2 WHERE domain = $1")
                    .bind(domain)
                    .bind(delta.not_after)
                    .execute(&mut *$conn)
                    .await?;
                bumps.entry($crate::stats::hour_of(old)).or_default().1 -= 1;
                bumps.entry(hour).or_default().1 += 1;
            }
        }
        sqlx::query(
            "INSERT INTO stats_issuance_daily (day, shard, issued) VALUES ($1, $2, 1) \
             ON CONFLICT (day, shard) DO UPDATE SET issued = stats_issuance_daily.issued + 1",
        )
        .bind(delta.day)
        .bind(delta.shard)
        .execute(&mut *$conn)
        .await?;
        for (hour, (certificates, domains)) in bumps {
            if certificates == 0 && domains == 0 {
                continue;
            }
            $crate::stats::bump_expiry!($conn, hour, delta.shard, certificates, domains);
        }
    }};
}
pub(crate) use record_issuance;

/// Takes the certificate `$serial` (just revoked, inside the write `$conn`) out of the active
/// certificates. Precertificates were never counted.
macro_rules! record_revocation {
    ($conn:ident, $serial:expr) => {{
        let serial: &str = $serial;
        let not_after: Option<i64> = sqlx::query_scalar(
            "SELECT not_after FROM certificates WHERE serial = $1 AND precertificate = 0",
        )
        .bind(serial)
        .fetch_optional(&mut *$conn)
        .await?;
        if let Some(not_after) = not_after {
            let (hour, shard) = (
                $crate::stats::hour_of(not_after),
                $crate::stats::shard_of_serial(serial),
            );
            $crate::stats::bump_expiry!($conn, hour, shard, -1_i64, 0_i64);
        }
    }};
}
pub(crate) use record_revocation;

/// Adds `$certificates` and `$domains` to one expiry-hour counter row.
macro_rules! bump_expiry {
    ($conn:ident, $hour:expr, $shard:expr, $certificates:expr, $domains:expr) => {
        sqlx::query(
            "INSERT INTO stats_expiry_hourly (hour, shard, certificates, domains) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (hour, shard) DO UPDATE SET \
             certificates = stats_expiry_hourly.certificates + excluded.certificates, \
             domains = stats_expiry_hourly.domains + excluded.domains",
        )
        .bind($hour)
        .bind($shard)
        .bind($certificates)
        .bind($domains)
        .execute(&mut *$conn)
        .await?;
    };
}
pub(crate) use bump_expiry;

/// [`shard_of`] for the macros.
pub(crate) fn shard_of_serial(serial: &str) -> i64 {
    shard_of(serial)
}

#[async_trait]
impl StatsStorage for SqlStorage {
    async fn get_issuance_stats(
        &self,
        now: OffsetDateTime,
        since: Date,
    ) -> SaResult<IssuanceStats> {
        let (hour, since_day) = (hour_of(micros(now)), unix_day(since));
        let db = self.db();
        let ((certificates, domains), days): ((i64, i64), Vec<(i64, i64)>) =
            on_read!(db, Failure, |conn| {
                let active: (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(certificates), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(domains), 0) AS BIGINT) \
                     FROM stats_expiry_hourly WHERE hour >= $1",
                )
                .bind(hour)
                .fetch_one(&mut *conn)
                .await?;
                let days: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT day, CAST(SUM(issued) AS BIGINT) FROM stats_issuance_daily \
                     WHERE day >= $1 GROUP BY day ORDER BY day",
                )
                .bind(since_day)
                .fetch_all(&mut *conn)
                .await?;
                (active, days)
            });
        Ok(IssuanceStats {
            active_certificates: u64::try_from(certificates).unwrap_or(0),
            active_domains: u64::try_from(domains).unwrap_or(0),
            daily_issuance: days
                .into_iter()
                .filter_map(|(day, n)| Some((date_of_day(day)?, u64::try_from(n).ok()?)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        })
    }

    async fn recompute_stats(&self, now: OffsetDateTime) -> SaResult<()> {
        let now_us = micros(now);
        let from = hour_of(now_us) * MICROS_PER_HOUR;
        let db = self.db();
        on_write!(db, Failure, |conn| {
            for table in [
                "stats_issuance_daily",
                "stats_expiry_hourly",
                "stats_domains",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO stats_issuance_daily (day, shard, issued) \
                 SELECT not_before / 86400000000, 0, COUNT(*) FROM certificates \
                 WHERE precertificate = 0 AND not_before >= 0 GROUP BY not_before / 86400000000",
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO stats_expiry_hourly (hour, shard, certificates, domains) \
                 SELECT not_after / 3600000000, 0, COUNT(*), 0 FROM certificates \
                 WHERE precertificate = 0 AND revoked_at IS NULL AND not_after >= $1 \
                 GROUP BY not_after / 3600000000",
            )
            .bind(from)
            .execute(&mut *conn)
            .await?;
            // Latest notAfter per registered domain, over the unexpired certificates, a page at
            // a time (keyset on the serial).
            let mut latest: HashMap<String, i64> = HashMap::new();
            let mut after = String::new();
            loop {
                let page: Vec<(String, i64, String)> = sqlx::query_as(
                    "SELECT serial, not_after, identifiers FROM certificates \
                     WHERE precertificate = 0 AND not_after >= $1 AND serial > $2 \
                     ORDER BY serial LIMIT $3",
                )
                .bind(from)
                .bind(&after)
                .bind(RECOMPUTE_PAGE)
                .fetch_all(&mut *conn)
                .await?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = last.clone();
                for (serial, not_after, identifiers) in &page {
                    let identifiers: Vec<Identifier> =
                        serde_json::from_str(identifiers).map_err(|e| {
                            crate::SaError::Corrupt(format!(
                                "certificates.identifiers of {serial}: {e}"
                            ))
                        })?;
                    for domain in registered_domains(&identifiers) {
                        let entry = latest.entry(domain).or_insert(*not_after);
                        *entry = (*entry).max(*not_after);
                    }
                }
            }
            let mut per_hour: BTreeMap<i64, i64> = BTreeMap::new();
            for not_after in latest.values() {
                *per_hour.entry(hour_of(*not_after)).or_default() += 1;
            }
            let rows: Vec<(String, i64)> = latest.into_iter().collect();
            for chunk in rows.chunks(DOMAINS_PER_INSERT) {
                let mut q = query_builder(&*conn, "INSERT INTO stats_domains (domain, not_after) ");
                q.push_values(chunk, |mut row, (domain, not_after)| {
                    row.push_bind(domain.as_str()).push_bind(*not_after);
                });
                q.build().execute(&mut *conn).await?;
            }
            for (hour, domains) in per_hour {
                bump_expiry!(conn, hour, 0_i64, 0_i64, domains);
            }
            sqlx::query("UPDATE stats_state SET recomputed_at = $1 WHERE id = 1")
                .bind(now_us)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    async fn stats_recomputed(&self) -> SaResult<bool> {
        let db = self.db();
        let at: Option<i64> = on_read!(db, Failure, |conn| {
            sqlx::query_scalar("SELECT recomputed_at FROM stats_state WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await?
                .flatten()
        });
        Ok(at.is_some())
    }

    async fn prune_stats(&self, now: OffsetDateTime) -> SaResult<u64> {
        let now_us = micros(now);
        let hour = hour_of(now_us);
        let db = self.db();
        on_write!(db, Failure, |conn| {
            let hours = sqlx::query("DELETE FROM stats_expiry_hourly WHERE hour < $1")
                .bind(hour)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            // A domain whose latest certificate expired before this hour counts in a pruned
            // hour only; its row goes too (a later issuance inserts it afresh).
            let domains = sqlx::query("DELETE FROM stats_domains WHERE not_after < $1")
                .bind(hour * MICROS_PER_HOUR)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(hours + domains)
        })
    }

    async fn add_sli_counts(&self, day: Date, counts: &[SliCount]) -> SaResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let day = unix_day(day);
        // In key order, so two processes adding at once never wait on each other in a cycle.
        let mut sorted = counts.to_vec();
        sorted.sort_by(|a, b| (&a.listener, &a.endpoint).cmp(&(&b.listener, &b.endpoint)));
        let db = self.db();
        on_write!(db, Failure, |conn| {
            for c in &sorted {
                sqlx::query(
                    "INSERT INTO stats_sli_daily (day, listener, endpoint, valid, errors) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, listener, endpoint) \
                     DO UPDATE SET valid = stats_sli_daily.valid + excluded.valid, \
                     errors = stats_sli_daily.errors + excluded.errors",
                )
                .bind(day)
                .bind(&c.listener)
                .bind(&c.endpoint)
                .bind(int(c.valid))
                .bind(int(c.errors))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }

    async fn get_sli_counts(&self, since: Date) -> SaResult<(Vec<SliCount>, Option<Date>)> {
        let since = unix_day(since);
        let db = self.db();
        let (rows, first): (Vec<(String, String, i64, i64)>, Option<i64>) =
            on_read!(db, Failure, |conn| {
                let rows = sqlx::query_as(
                    "SELECT listener, endpoint, CAST(SUM(valid) AS BIGINT), \
                     CAST(SUM(errors) AS BIGINT) FROM stats_sli_daily WHERE day >= $1 \
                     GROUP BY listener, endpoint ORDER BY listener, endpoint",
                )
                .bind(since)
                .fetch_all(&mut *conn)
                .await?;
                let first: Option<i64> =
                    sqlx::query_scalar("SELECT MIN(day) FROM stats_sli_daily WHERE day >= $1")
                        .bind(since)
                        .fetch_one(&mut *conn)
                        .await?;
                (rows, first)
            });
        let counts = rows
            .into_iter()
            .map(|(listener, endpoint, valid, errors)| SliCount {
                listener,
                endpoint,
                valid: uint(valid),
                errors: uint(errors),
            })
            .collect();
        Ok((counts, first.and_then(date_of_day)))
    }

    async fn put_ct_log_size(&self, day: Date, log: &str, tree_size: u64) -> SaResult<()> {
        let (day, log) = (unix_day(day), log.to_owned());
        let db = self.db();
        on_write!(db, Failure, |conn| {
            sqlx::query(
                "INSERT INTO stats_ct_log_daily (day, log, tree_size) VALUES ($1, $2, $3) \
                 ON CONFLICT (day, log) DO UPDATE SET tree_size = CASE \
                 WHEN excluded.tree_size > stats_ct_log_daily.tree_size \
                 THEN excluded.tree_size ELSE stats_ct_log_daily.tree_size END",
            )
            .bind(day)
            .bind(&log)
            .bind(int(tree_size))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    async fn get_ct_log_sizes(&self, since: Date) -> SaResult<Vec<CtLogSize>> {
        let since = unix_day(since);
        let db = self.db();
        let rows: Vec<(i64, String, i64)> = on_read!(db, Failure, |conn| {
            sqlx::query_as(
                "SELECT day, log, tree_size FROM stats_ct_log_daily WHERE day >= $1 \
                 ORDER BY log, day",
            )
            .bind(since)
            .fetch_all(&mut *conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(day, log, size)| {
                Some(CtLogSize {
                    day: date_of_day(day)?,
                    log,
                    tree_size: uint(size),
                })
            })
            .collect())
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        let ids = [
            Identifier::dns("www.example.com"),
            Identifier::dns("*.Example.COM."),
            Identifier::dns("shop.example.co.uk"),
            Identifier::dns("alice.github.io"),
            Identifier::ip("192.0.2.1".parse().unwrap()),
        ];
        let got: Vec<String> = registered_domains(&ids).into_iter().collect();
        assert_eq!(got, ["alice.github.io", "example.co.uk", "example.com"]);
    }

    #[test]
    fn hours_and_days_round_towards_the_past() {
        assert_eq!(hour_of(MICROS_PER_HOUR - 1), 0);
        assert_eq!(hour_of(MICROS_PER_HOUR), 1);
        assert_eq!(hour_of(-1), -1);
        assert_eq!(day_of(MICROS_PER_DAY * 3 + 5), 3);
        let d = time::macros::date!(2026 - 05 - 01);
        assert_eq!(date_of_day(unix_day(d)), Some(d));
    }

    #[test]
    fn shards_stay_in_range() {
        for s in [
            "",
            "a",
            "ffffffffffffffffffffffffffffffffffff",
            "0123456789abcdef",
        ] {
            assert!((0..SHARDS).contains(&shard_of(s)), "{s}");
        }
    }
}
