//! Cairn's operations artifacts (`deploy/`): Prometheus rules, the Grafana dashboard and the
//! code that keeps them honest. The service-level objectives are configuration
//! (`prometheus/slos.toml`); [`slo`] turns them into the recording rules the burn-rate alerts
//! read (`prometheus/slo.rules.yml`), so adding an SLO or changing a target is one edit in one
//! file. The tests beside this crate run `promtool` over every rules file and check that the
//! dashboard asks only for series that exist.

pub mod promql;
pub mod slo;
