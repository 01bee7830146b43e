//! A throwaway PostgreSQL schema for one benchmark run: created under a random name that needs
//! no quoting, reached through `search_path`, dropped at the end.

use anyhow::Context;

/// A schema made for this run.
pub(crate) struct BenchSchema {
    admin: sqlx::PgPool,
    name: String,
    /// `pg` with `search_path` set to the schema, for `SqlStorage::connect`.
    pub(crate) url: String,
}

impl BenchSchema {
    /// Creates `<prefix>_<random>` (letters, digits and underscores only) in the database at `pg`.
    pub(crate) async fn create(pg: &str, prefix: &str) -> anyhow::Result<Self> {
        let suffix: String = cairn_core::random_id(12)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("{prefix}_{}", suffix.to_lowercase());
        let admin = sqlx::PgPool::connect(pg)
            .await
            .context("connecting to PostgreSQL")?;
        // The schema name is ours (letters, digits, underscores).
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .context("creating the benchmark schema")?;
        let sep = if pg.contains('?') { '&' } else { '?' };
        let url = format!("{pg}{sep}options=-csearch_path%3D{name}");
        Ok(Self { admin, name, url })
    }

    /// Drops the schema and everything in it.
    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&self.admin)
        .await
        .context("dropping the benchmark schema")?;
        Ok(())
    }
}
