//! [`SqlStorage`]: the [`StorageAuthority`] on SQLite or PostgreSQL, each statement written once
//! (the dialect dispatch, the SQLite readers and group-commit writer are `cairn-db`'s).
//!
//! Every column is stored with a type both databases map to the same Rust type: `TEXT` →
//! `String`, `INTEGER`/`BIGINT` → `i64`, `BLOB`/`BYTEA` → `Vec<u8>`, 0/1/`BOOLEAN` → `bool`;
//! times as unix microseconds, JSON as text.

mod codec;

use crate::eab_seal::EabSeal;
use crate::{
    AuthzState, BlockedKey, CertificateSelector, ChallengeOutcome, CrlInfo, Lease, RenewalSelector,
    RevokedCertificate, SaError, SaResult, StorageAuthority, StoredCrl,
};
use async_trait::async_trait;
use cairn_core::{
    Account, AccountId, AccountPolicy, AccountStatus, Authorization, AuthzId, AuthzStatus,
    Certificate, ChallengeId, EabKey, Identifier, IdentifierType, Order, OrderId, OrderStatus,
    Problem, Revocation, Serial,
};
use cairn_db::{Db, DbError, Migrations, Schema, on_read, on_write, query_builder};
use codec::{
    AccountRow, AuthzRow, CertificateRow, EabRow, OrderRow, OrderStateRow, Stored, account_columns,
    authz_select, authzs_from_rows, certificate_columns, from_micros, identifiers_key, micros,
    order_columns, order_select, order_state_select, order_with_states, orders_from_rows,
    reversed_name, revocation_from, to_json,
};
use sqlx::error::ErrorKind;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;

/// The orders left `processing` past their lease (`$1`: now), oldest first, which every RA
/// instance's recovery reads every `ra.recovery_interval`. The status is written out, not bound:
/// only then may SQLite (and PostgreSQL's generic plan) use the partial index `orders_processing`,
/// which holds just those orders. Bound as a parameter, the read was a scan of every order ever
/// stored, every 30 seconds.
const STALE_PROCESSING_ORDERS: &str = concat!(
    order_select!(),
    " WHERE o.status = 'processing' AND COALESCE(o.processing_until, 0) <= $1 \
     ORDER BY o.created_at, o.id, oa.position"
);

/// A failure inside a storage method before it reaches the caller: the storage's own
/// ([`SaError`]) or the driver's. [`SaError`] is the driver-free contract of `cairn-api`, so it has
/// no conversion from `sqlx::Error` for `?` to use; the statements below return this instead
/// (`on_read!(self.db, Failure, …)`, `on_write!(self.db, Failure, …)`), and it becomes a
/// [`SaError`] (the driver's error boxed as the source of [`SaError::Database`] or
/// [`SaError::Migrate`]) where a method returns.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The storage's own answer (`NotFound`, `Conflict`, …).
    Sa(SaError),
    /// The database failed.
    Database(sqlx::Error),
    /// Migrations failed.
    Migrate(sqlx::migrate::MigrateError),
}

impl From<SaError> for Failure {
    fn from(e: SaError) -> Self {
        Failure::Sa(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Database(e)
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Database(e) => Failure::Database(e),
            DbError::Migrate(e) => Failure::Migrate(e),
            DbError::NotCommitted(why) => Failure::Sa(SaError::NotCommitted(why)),
            DbError::Create(e) => Failure::Database(sqlx::Error::Io(e)),
            // `UnsupportedUrl` and any later kind of the layer's: its message, which never
            // names the URL.
            e => Failure::Database(sqlx::Error::Configuration(e.to_string().into())),
        }
    }
}

impl From<Failure> for SaError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sa(e) => e,
            Failure::Database(e) => SaError::Database(Box::new(e)),
            Failure::Migrate(e) => SaError::Migrate(Box::new(e)),
        }
    }
}

/// A driver error as the caller sees it.
pub(crate) fn database(e: sqlx::Error) -> SaError {
    Failure::Database(e).into()
}

/// The storage authority's tables, one migration set per backend.
static SCHEMA: Schema = Schema {
    name: "sa",
    migrations: Migrations::PerBackend {
        sqlite: &sqlx::migrate!("./migrations/sqlite"),
        postgres: &sqlx::migrate!("./migrations/postgres"),
    },
};

/// The storage authority on a SQL database: SQLite (embedded, the default) or PostgreSQL.
///
/// Times are stored as unix **microseconds**: an [`OffsetDateTime`] with finer precision reads
/// back truncated (towards the past) to the microsecond, and always in UTC. Use
/// [`SqlStorage::truncate_time`] to predict the stored value.
///
/// Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct SqlStorage {
    db: Db,
    /// Seals EAB HMAC keys at rest when set (see [`crate::EabSeal`]).
    eab_seal: Option<Arc<EabSeal>>,
}

impl fmt::Debug for SqlStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no connection details: they may carry a password.
        f.debug_struct("SqlStorage")
            .field("backend", &self.backend_name())
            .field("eab_sealed", &self.eab_seal.is_some())
            .finish()
    }
}

impl SqlStorage {
    /// Connects to `url` and applies the pending migrations.
    ///
    /// * `sqlite://path/to/cairn.db` (relative) or `sqlite:///abs/path/cairn.db`: the file is
    ///   created if missing (owner-only); WAL journal with `synchronous=FULL` (a committed
    ///   transaction survives SIGKILL and power loss), foreign keys enforced, a 10 s busy
    ///   timeout. Reads use connections of their own; writes are committed in groups.
    /// * `postgres://…` or `postgresql://…`: any URL `sqlx` accepts, e.g. with
    ///   `options=-csearch_path%3Dmyschema` to use a schema other than `public`.
    ///
    /// Errors never include the URL.
    pub async fn connect(url: &str) -> SaResult<SqlStorage> {
        let db = Db::connect(url, &SCHEMA).await.map_err(Failure::from)?;
        Ok(SqlStorage { db, eab_seal: None })
    }

    /// Opens (creating if missing, with the directory) the SQLite database `dir/cairn.db`, with
    /// the same settings as [`SqlStorage::connect`].
    pub async fn open_sqlite_in(dir: &Path) -> SaResult<SqlStorage> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| database(sqlx::Error::Io(e)))?;
        let db = Db::open_sqlite(&dir.join("cairn.db"), &SCHEMA)
            .await
            .map_err(Failure::from)?;
        Ok(SqlStorage { db, eab_seal: None })
    }

    /// Seals EAB HMAC keys written from now on with `seal`, and opens sealed ones with it.
    /// Without a seal, keys are written in plaintext and sealed ones can't be read.
    pub fn with_eab_seal(mut self, seal: EabSeal) -> SqlStorage {
        self.eab_seal = Some(Arc::new(seal));
        self
    }

    /// Seals every EAB HMAC key still stored in plaintext (written before sealing existed);
    /// returns how many it sealed. Each row is rewritten only if it still holds the plaintext
    /// read, so concurrent instances doing the same never clobber each other.
    ///
    /// # Errors
    /// [`SaError::Corrupt`] without a seal ([`SqlStorage::with_eab_seal`]); database failures.
    pub async fn seal_eab_keys_at_rest(&self) -> SaResult<u64> {
        let seal = self
            .eab_seal
            .clone()
            .ok_or_else(|| SaError::Corrupt("no EAB sealing key is configured".into()))?;
        let rows: Vec<(String, Vec<u8>)> = on_read!(self.db, Failure, |conn| {
            sqlx::query_as("SELECT key_id, hmac_key FROM eab_keys")
                .fetch_all(conn)
                .await?
        });
        let mut sealed = 0;
        for (key_id, plain) in rows {
            if EabSeal::is_sealed(&plain) {
                continue;
            }
            let value = seal.seal(&key_id, &plain)?;
            let changed: Result<u64, SaError> = on_write!(self.db, Failure, |conn| {
                let done = sqlx::query(
                    "UPDATE eab_keys SET hmac_key = $1 WHERE key_id = $2 AND hmac_key = $3",
                )
                .bind(&value)
                .bind(&key_id)
                .bind(&plain)
                .execute(&mut *conn)
                .await?;
                Ok(done.rows_affected())
            });
            sealed += changed?;
        }
        Ok(sealed)
    }

    /// The database, for the statistics counters (`crate::stats`).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.db.dialect().name()
    }

    /// Closes the connections, waiting for those in use to be returned (and, on SQLite, for the
    /// writes already queued to be committed). Writes after this fail.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// `t` as it reads back from storage: in UTC, truncated to the microsecond.
    pub fn truncate_time(t: OffsetDateTime) -> OffsetDateTime {
        from_micros(micros(t)).unwrap_or(t)
    }
}

/// The most rows one multi-row `INSERT` carries: 256 rows of at most 9 columns stay far below
/// the bound parameters either database accepts in one statement (32,766 for SQLite, 65,535 for
/// PostgreSQL), whatever an operator sets as the most identifiers per order.
const ROWS_PER_INSERT: usize = 256;

/// Maps a failed write: unique violation → `Conflict(what)`, foreign-key violation (a referenced
/// row is missing) → `NotFound`.
fn write_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SaError {
    move |e| {
        if let sqlx::Error::Database(db) = &e {
            match db.kind() {
                ErrorKind::UniqueViolation => return SaError::Conflict(what),
                ErrorKind::ForeignKeyViolation => return SaError::NotFound,
                _ => {}
            }
        }
        database(e)
    }
}

/// `Conflict(what)` if the row exists (the precondition failed), else `NotFound`.
fn precondition_failed(exists: i64, what: &'static str) -> SaError {
    if exists > 0 {
        SaError::Conflict(what)
    } else {
        SaError::NotFound
    }
}

fn position(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts a certificate row (a precertificate if `$precert` is 1) with its names, inside a
/// write; `$identifiers`, `$names`, `$revoked_at` and `$reason` as `finalize_order` computes them.
macro_rules! insert_certificate {
    ($conn:ident, $cert:ident, $identifiers:ident, $names:ident, $revoked_at:ident, $reason:ident, $precert:expr) => {
            sqlx::query(concat!(
                "INSERT INTO certificates (",
                certificate_columns!(),
                ", precertificate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ))
            .bind($cert.serial.as_str())
            .bind($cert.account_id.as_str())
            .bind($cert.order_id.as_str())
            .bind(&$cert.der)
            .bind(&$cert.issuer_id)
            .bind(&$identifiers)
            .bind(micros($cert.not_before))
            .bind(micros($cert.not_after))
            .bind(&$cert.spki_sha256)
            .bind($revoked_at)
            .bind($reason)
            .bind($cert.renew_by.map(micros))
            .bind($cert.replaced_by.as_ref().map(OrderId::as_str))
            .bind(i64::from($cert.crl_shard))
            .bind($precert)
            .execute(&mut *$conn)
            .await
            .map_err(write_err("certificate serial already stored"))?;
            for name in &$names {
                sqlx::query(
                    "INSERT INTO certificate_names (serial, reversed_name, not_before) \
                     VALUES ($1, $2, $3)",
                )
                .bind($cert.serial.as_str())
                .bind(name)
                .bind(micros($cert.not_before))
                .execute(&mut *$conn)
                .await?;
            }
    };
}

/// Inserts authorizations (`$authzs: Vec<Authorization>`) and their challenges (`$challenges`:
/// `(authz ID, position, challenge, error JSON, validation record JSON)` rows) inside a write
/// transaction on `$conn`: shared by newOrder and newAuthz.
macro_rules! insert_authzs {
    ($conn:ident, $authzs:ident, $challenges:ident) => {
        for rows in $authzs.chunks(ROWS_PER_INSERT) {
            let mut q = query_builder(
                &*$conn,
                "INSERT INTO authzs (id, account_id, identifier_type, identifier_value, \
                 wildcard, status, expires, created_at) ",
            );
            q.push_values(rows, |mut row, authz| {
                row.push_bind(authz.id.as_str())
                    .push_bind(authz.account_id.as_str())
                    .push_bind(authz.identifier.typ.db())
                    .push_bind(authz.identifier.value.as_str())
                    .push_bind(authz.wildcard)
                    .push_bind(authz.status.db())
                    .push_bind(micros(authz.expires))
                    .push_bind(micros(authz.created_at));
            });
            q.build()
                .execute(&mut *$conn)
                .await
                .map_err(write_err("authorization ID already exists"))?;
        }
        for rows in $challenges.chunks(ROWS_PER_INSERT) {
            let mut q = query_builder(
                &*$conn,
                "INSERT INTO challenges (id, authz_id, type, token, status, validated, \
                 error, validation_record, position) ",
            );
            q.push_values(rows, |mut row, (authz_id, i, c, err, record)| {
                row.push_bind(c.id.as_str())
                    .push_bind(authz_id.as_str())
                    .push_bind(c.typ.db())
                    .push_bind(c.token.as_str())
                    .push_bind(c.status.db())
                    .push_bind(c.validated.map(micros))
                    .push_bind(err.as_deref())
                    .push_bind(record.as_str())
                    .push_bind(position(*i));
            });
            q.build()
                .execute(&mut *$conn)
                .await
                .map_err(write_err("challenge ID already exists"))?;
        }
    };
}

/// One challenge row for [`insert_authzs!`]: authorization ID, position, the challenge, its
/// error and validation record as JSON.
type ChallengeRow = (
    AuthzId,
    usize,
    cairn_core::Challenge,
    Option<String>,
    String,
);

/// The challenge rows of `authzs` for [`insert_authzs!`].
fn challenge_rows(authzs: &[Authorization]) -> SaResult<Vec<ChallengeRow>> {
    let mut rows = Vec::new();
    for authz in authzs {
        for (i, c) in authz.challenges.iter().enumerate() {
            let err = c.error.as_ref().map(to_json).transpose()?;
            let record = to_json(&c.validation_record)?;
            rows.push((authz.id.clone(), i, c.clone(), err, record));
        }
    }
    Ok(rows)
}

#[async_trait]
impl StorageAuthority for SqlStorage {
    // ---- accounts ----

    async fn new_account(&self, account: &Account) -> SaResult<()> {
        let jwk = to_json(&account.jwk)?;
        let contact = to_json(&account.contact)?;
        let account = account.clone();
        on_write!(self.db, Failure, |conn| {
            sqlx::query(
                "INSERT INTO accounts (id, jwk, key_thumbprint, contact, status, created_at, \
                 eab_key_id, initial_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(account.id.as_str())
            .bind(&jwk)
            .bind(&account.key_thumbprint)
            .bind(&contact)
            .bind(account.status.db())
            .bind(micros(account.created_at))
            .bind(account.eab_key_id.as_deref())
            .bind(account.initial_ip.as_deref())
            .execute(&mut *conn)
            .await
            .map_err(write_err("account key already registered"))?;
            if let Some(key_id) = &account.eab_key_id {
                let bound = sqlx::query(
                    "UPDATE eab_keys SET bound_account = $1 \
                     WHERE key_id = $2 AND bound_account IS NULL",
                )
                .bind(account.id.as_str())
                .bind(key_id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if bound == 0 {
                    // The account row references the key, so the key exists: it is bound.
                    return Err(SaError::Conflict("EAB key already bound").into());
                }
            }
            Ok(())
        })
    }

    async fn get_account(&self, id: &AccountId) -> SaResult<Account> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, AccountRow>(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(conn)
            .await?
        });
        row.ok_or(SaError::NotFound)?.into_account()
    }

    async fn get_account_by_key(&self, thumbprint: &str) -> SaResult<Account> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, AccountRow>(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE key_thumbprint = $1"
            ))
            .bind(thumbprint)
            .fetch_optional(conn)
            .await?
        });
        row.ok_or(SaError::NotFound)?.into_account()
    }

    async fn update_account(&self, account: &Account) -> SaResult<()> {
        let contact = to_json(&account.contact)?;
        let (id, status) = (account.id.clone(), account.status);
        on_write!(self.db, Failure, |conn| {
            // Only a valid account changes: a copy read before another instance deactivated
            // the account must not bring it back.
            let changed = sqlx::query(
                "UPDATE accounts SET contact = $2, status = $3 WHERE id = $1 AND status = $4",
            )
            .bind(id.as_str())
            .bind(&contact)
            .bind(status.db())
            .bind(AccountStatus::Valid.db())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                return Err(precondition_failed(exists, "account is not valid").into());
            }
            Ok(())
        })
    }

    async fn update_account_key(
        &self,
        id: &AccountId,
        jwk: &serde_json::Value,
        thumbprint: &str,
    ) -> SaResult<()> {
        let jwk = to_json(jwk)?;
        let (id, thumbprint) = (id.clone(), thumbprint.to_owned());
        on_write!(self.db, Failure, |conn| {
            let changed =
                sqlx::query("UPDATE accounts SET jwk = $2, key_thumbprint = $3 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(&jwk)
                    .bind(&thumbprint)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_err("key already registered to another account"))?
                    .rows_affected();
            if changed == 0 {
                return Err(SaError::NotFound.into());
            }
            Ok(())
        })
    }

    async fn count_accounts_by_ip(&self, ip: &str, since: OffsetDateTime) -> SaResult<u64> {
        let n: i64 = on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM accounts WHERE initial_ip = $1 AND created_at >= $2",
            )
            .bind(ip)
            .bind(micros(since))
            .fetch_one(conn)
            .await?
        });
        Ok(count(n))
    }

    // ---- external account binding ----

    async fn new_eab_key(&self, key: &EabKey) -> SaResult<()> {
        let key = key.clone();
        let stored = match &self.eab_seal {
            Some(seal) => seal.seal(&key.key_id, &key.hmac_key)?,
            None => key.hmac_key.clone(),
        };
        on_write!(self.db, Failure, |conn| {
            sqlx::query(
                "INSERT INTO eab_keys (key_id, hmac_key, created_at, bound_account) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&key.key_id)
            .bind(&stored)
            .bind(micros(key.created_at))
            .bind(key.bound_account.as_ref().map(AccountId::as_str))
            .execute(&mut *conn)
            .await
            .map_err(write_err("EAB key ID already exists"))?;
            Ok(())
        })
    }

    async fn get_eab_key(&self, key_id: &str) -> SaResult<EabKey> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, EabRow>(
                "SELECT key_id, hmac_key, created_at, bound_account FROM eab_keys \
                 WHERE key_id = $1",
            )
            .bind(key_id)
            .fetch_optional(conn)
            .await?
        });
        let mut key = row.ok_or(SaError::NotFound)?.into_key()?;
        if EabSeal::is_sealed(&key.hmac_key) {
            let seal = self.eab_seal.as_ref().ok_or_else(|| {
                SaError::Corrupt("the EAB key is sealed and no sealing key is configured".into())
            })?;
            key.hmac_key = seal.open(&key.key_id, &key.hmac_key)?;
        }
        Ok(key)
    }

    // ---- identifier policy (private PKI) ----

    async fn get_identifier_policy(&self, account: &AccountId) -> SaResult<Option<AccountPolicy>> {
        let row: Option<(Option<String>, Option<String>)> = on_read!(self.db, Failure, |conn| {
            sqlx::query_as(
                "SELECT a.identifier_policy, e.identifier_policy FROM accounts a \
                 LEFT JOIN eab_keys e ON e.key_id = a.eab_key_id WHERE a.id = $1",
            )
            .bind(account.as_str())
            .fetch_optional(conn)
            .await?
        });
        let (own, eab) = row.ok_or(SaError::NotFound)?;
        own.or(eab)
            .map(|j| {
                serde_json::from_str(&j)
                    .map_err(|e| SaError::Corrupt(format!("identifier_policy: {e}")))
            })
            .transpose()
    }

    async fn set_account_identifier_policy(
        &self,
        account: &AccountId,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()> {
        let json = policy.map(to_json).transpose()?;
        let id = account.clone();
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query("UPDATE accounts SET identifier_policy = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(json.as_deref())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if changed == 0 {
                return Err(SaError::NotFound.into());
            }
            Ok(())
        })
    }

    async fn set_eab_identifier_policy(
        &self,
        key_id: &str,
        policy: Option<&AccountPolicy>,
    ) -> SaResult<()> {
        let json = policy.map(to_json).transpose()?;
        let key_id = key_id.to_owned();
        on_write!(self.db, Failure, |conn| {
            let changed =
                sqlx::query("UPDATE eab_keys SET identifier_policy = $2 WHERE key_id = $1")
                    .bind(key_id.as_str())
                    .bind(json.as_deref())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            if changed == 0 {
                return Err(SaError::NotFound.into());
            }
            Ok(())
        })
    }

    // ---- orders and authorizations ----

    async fn new_order_and_authzs(
        &self,
        order: &Order,
        new_authzs: &[Authorization],
    ) -> SaResult<()> {
        let identifiers = to_json(&order.identifiers)?;
        let key = identifiers_key(&order.identifiers);
        let error = order.error.as_ref().map(to_json).transpose()?;
        let challenges = challenge_rows(new_authzs)?;
        let order = order.clone();
        let new_authzs = new_authzs.to_vec();
        // One statement per table, whatever the number of names: each statement is a round
        // trip to the database (on SQLite, to its connection's thread).
        on_write!(self.db, Failure, |conn| {
            insert_authzs!(conn, new_authzs, challenges);
            sqlx::query(
                "INSERT INTO orders (id, account_id, status, identifiers, identifiers_key, \
                 profile, expires, not_before, not_after, error, certificate_serial, replaces, \
                 csr, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(order.id.as_str())
            .bind(order.account_id.as_str())
            .bind(order.status.db())
            .bind(&identifiers)
            .bind(&key)
            .bind(order.profile.as_deref())
            .bind(micros(order.expires))
            .bind(order.not_before.map(micros))
            .bind(order.not_after.map(micros))
            .bind(error.as_deref())
            .bind(order.certificate_serial.as_ref().map(Serial::as_str))
            .bind(order.replaces.as_deref())
            .bind(order.csr_der.as_deref())
            .bind(micros(order.created_at))
            .execute(&mut *conn)
            .await
            .map_err(write_err("order ID already exists"))?;
            let positions: Vec<_> = order.authz_ids.iter().enumerate().collect();
            for rows in positions.chunks(ROWS_PER_INSERT) {
                let mut q = query_builder(
                    &*conn,
                    "INSERT INTO order_authzs (order_id, authz_id, position) ",
                );
                q.push_values(rows, |mut row, (i, authz_id)| {
                    row.push_bind(order.id.as_str())
                        .push_bind(authz_id.as_str())
                        .push_bind(position(*i));
                });
                q.build()
                    .execute(&mut *conn)
                    .await
                    .map_err(write_err("duplicate order authorization"))?;
            }
            Ok(())
        })
    }

    async fn new_authzs(&self, new_authzs: &[Authorization]) -> SaResult<()> {
        let challenges = challenge_rows(new_authzs)?;
        let new_authzs = new_authzs.to_vec();
        on_write!(self.db, Failure, |conn| {
            insert_authzs!(conn, new_authzs, challenges);
            Ok(())
        })
    }

    async fn get_order(&self, id: &OrderId) -> SaResult<Order> {
        let rows = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, OrderRow>(concat!(
                order_select!(),
                " WHERE o.id = $1 ORDER BY oa.position"
            ))
            .bind(id.as_str())
            .fetch_all(conn)
            .await?
        });
        orders_from_rows(rows)?
            .into_iter()
            .next()
            .ok_or(SaError::NotFound)
    }

    async fn get_order_with_authz_states(
        &self,
        id: &OrderId,
    ) -> SaResult<(Order, Vec<AuthzState>)> {
        let rows = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, OrderStateRow>(concat!(
                order_state_select!(),
                " WHERE o.id = $1 ORDER BY oa.position"
            ))
            .bind(id.as_str())
            .fetch_all(conn)
            .await?
        });
        order_with_states(rows)?.ok_or(SaError::NotFound)
    }

    async fn get_order_ids_for_account(
        &self,
        account: &AccountId,
        offset: u64,
        limit: u64,
    ) -> SaResult<Vec<OrderId>> {
        let ids: Vec<String> = on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar(
                "SELECT id FROM orders WHERE account_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            )
            .bind(account.as_str())
            .bind(clamp(limit))
            .bind(clamp(offset))
            .fetch_all(conn)
            .await?
        });
        Ok(ids.into_iter().map(OrderId).collect())
    }

    async fn get_reusable_order(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> SaResult<Option<Order>> {
        let key = identifiers_key(identifiers);
        let rows = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, OrderRow>(concat!(
                order_select!(),
                " WHERE o.id = (SELECT id FROM orders WHERE account_id = $1 \
                 AND identifiers_key = $2 AND status = 'pending' AND expires > $3 \
                 AND COALESCE(profile, '') = COALESCE($4, '') \
                 ORDER BY created_at DESC, id DESC LIMIT 1) \
                 ORDER BY oa.position"
            ))
            .bind(account.as_str())
            .bind(&key)
            .bind(micros(now))
            .bind(profile)
            .fetch_all(conn)
            .await?
        });
        Ok(orders_from_rows(rows)?.into_iter().next())
    }

    async fn get_authorization(&self, id: &AuthzId) -> SaResult<Authorization> {
        self.get_authorizations(std::slice::from_ref(id))
            .await?
            .into_iter()
            .next()
            .ok_or(SaError::NotFound)
    }

    async fn get_authorizations(&self, ids: &[AuthzId]) -> SaResult<Vec<Authorization>> {
        let unique: BTreeSet<&str> = ids.iter().map(AuthzId::as_str).collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let rows = on_read!(self.db, Failure, |conn| {
            let mut qb = query_builder(conn, concat!(authz_select!(), " WHERE a.id IN ("));
            let mut list = qb.separated(", ");
            for id in &unique {
                list.push_bind(*id);
            }
            list.push_unseparated(") ORDER BY a.id, c.position");
            qb.build_query_as::<AuthzRow>().fetch_all(conn).await?
        });
        let mut found: HashMap<AuthzId, Authorization> = authzs_from_rows(rows)?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            // Move each authorization out on its last mention; clone for earlier repeats.
            let last = !ids[i + 1..].contains(id);
            let authz = if last {
                found.remove(id)
            } else {
                found.get(id).cloned()
            };
            out.push(authz.ok_or(SaError::NotFound)?);
        }
        Ok(out)
    }

    async fn get_reusable_authz(
        &self,
        account: &AccountId,
        identifier: &Identifier,
        wildcard: bool,
        include_pending: bool,
        expires_after: OffsetDateTime,
    ) -> SaResult<Option<Authorization>> {
        let identifier = identifier.authz_identifier();
        let second_status = if include_pending {
            AuthzStatus::Pending
        } else {
            AuthzStatus::Valid
        };
        let rows = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, AuthzRow>(concat!(
                authz_select!(),
                " WHERE a.id = (SELECT r.id FROM authzs r WHERE r.account_id = $1 \
                 AND r.identifier_type = $2 AND r.identifier_value = $3 AND r.wildcard = $4 \
                 AND r.status IN ($5, $6) AND r.expires > $7 \
                 AND NOT (r.status = 'pending' AND EXISTS (SELECT 1 FROM challenges s \
                   WHERE s.authz_id = r.id AND s.status = 'processing' \
                   AND COALESCE(s.processing_until, 0) <= $7)) \
                 ORDER BY CASE r.status WHEN 'valid' THEN 0 ELSE 1 END, r.created_at DESC, \
                 r.id DESC LIMIT 1) \
                 ORDER BY c.position"
            ))
            .bind(account.as_str())
            .bind(identifier.typ.db())
            .bind(&identifier.value)
            .bind(wildcard)
            .bind(AuthzStatus::Valid.db())
            .bind(second_status.db())
            .bind(micros(expires_after))
            .fetch_all(conn)
            .await?
        });
        Ok(authzs_from_rows(rows)?.into_iter().next())
    }

    async fn set_challenge_processing(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
    ) -> SaResult<bool> {
        let (authz, chall, lease) = (authz.clone(), chall.clone(), lease.clone());
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE challenges SET status = 'processing', processing_owner = $3, \
                 processing_until = $4 \
                 WHERE id = $1 AND authz_id = $2 AND status = 'pending' \
                 AND EXISTS (SELECT 1 FROM authzs WHERE id = $2 AND status = 'pending')",
            )
            .bind(chall.as_str())
            .bind(authz.as_str())
            .bind(&lease.owner)
            .bind(micros(lease.until))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
    }

    async fn get_stale_processing_challenges(
        &self,
        now: OffsetDateTime,
        limit: u64,
    ) -> SaResult<Vec<(AuthzId, ChallengeId)>> {
        let rows: Vec<(String, String)> = on_read!(self.db, Failure, |conn| {
            sqlx::query_as(
                "SELECT c.authz_id, c.id FROM challenges c JOIN authzs a ON a.id = c.authz_id \
                 WHERE c.status = 'processing' AND COALESCE(c.processing_until, 0) <= $1 \
                 AND a.status = 'pending' \
                 ORDER BY COALESCE(c.processing_until, 0), c.authz_id, c.id LIMIT $2",
            )
            .bind(micros(now))
            .bind(clamp(limit))
            .fetch_all(conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(a, c)| (AuthzId(a), ChallengeId(c)))
            .collect())
    }

    async fn claim_processing_challenge(
        &self,
        authz: &AuthzId,
        chall: &ChallengeId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool> {
        let (authz, chall, lease) = (authz.clone(), chall.clone(), lease.clone());
        on_write!(self.db, Failure, |conn| {
            // The WHERE is the compare: two instances claiming at once both see the ended
            // lease, but the second UPDATE re-reads the row the first committed and matches
            // nothing.
            let changed = sqlx::query(
                "UPDATE challenges SET processing_owner = $3, processing_until = $4 \
                 WHERE id = $1 AND authz_id = $2 AND status = 'processing' \
                 AND COALESCE(processing_until, 0) <= $5 \
                 AND EXISTS (SELECT 1 FROM authzs WHERE id = $2 AND status = 'pending')",
            )
            .bind(chall.as_str())
            .bind(authz.as_str())
            .bind(&lease.owner)
            .bind(micros(lease.until))
            .bind(micros(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
    }

    async fn finish_challenge(&self, outcome: &ChallengeOutcome) -> SaResult<()> {
        let error = outcome.challenge.error.as_ref().map(to_json).transpose()?;
        let record = to_json(&outcome.challenge.validation_record)?;
        let outcome = outcome.clone();
        on_write!(self.db, Failure, |conn| {
            let c = &outcome.challenge;
            let changed = sqlx::query(
                "UPDATE challenges SET status = $3, validated = $4, error = $5, \
                 validation_record = $6 \
                 WHERE id = $1 AND authz_id = $2 AND status IN ('pending', 'processing')",
            )
            .bind(c.id.as_str())
            .bind(outcome.authz_id.as_str())
            .bind(c.status.db())
            .bind(c.validated.map(micros))
            .bind(error.as_deref())
            .bind(&record)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                let exists: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM challenges WHERE id = $1 AND authz_id = $2",
                )
                .bind(c.id.as_str())
                .bind(outcome.authz_id.as_str())
                .fetch_one(&mut *conn)
                .await?;
                return Err(precondition_failed(exists, "challenge already finished").into());
            }
            let changed = sqlx::query(
                "UPDATE authzs SET status = $2, expires = $3 WHERE id = $1 AND status = 'pending'",
            )
            .bind(outcome.authz_id.as_str())
            .bind(outcome.authz_status.db())
            .bind(micros(outcome.expires))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                // The challenge row exists, so the authorization does too.
                return Err(SaError::Conflict("authorization is no longer pending").into());
            }
            Ok(())
        })
    }

    async fn deactivate_authorization(&self, id: &AuthzId) -> SaResult<bool> {
        let id = id.clone();
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE authzs SET status = 'deactivated' \
                 WHERE id = $1 AND status IN ('pending', 'valid')",
            )
            .bind(id.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
    }

    async fn deactivate_account_authorizations(&self, account: &AccountId) -> SaResult<u64> {
        let account = account.clone();
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE authzs SET status = 'deactivated' \
                 WHERE account_id = $1 AND status IN ('pending', 'valid')",
            )
            .bind(account.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed)
        })
    }

    // ---- finalize and certificates ----

    async fn set_order_processing(
        &self,
        id: &OrderId,
        csr_der: &[u8],
        serial: &Serial,
        at: OffsetDateTime,
        lease: &Lease,
    ) -> SaResult<bool> {
        let (id, csr_der, serial) = (id.clone(), csr_der.to_vec(), serial.clone());
        let lease = lease.clone();
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE orders SET status = 'processing', csr = $2, processing_owner = $3, \
                 processing_until = $4 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id.as_str())
            .bind(&csr_der)
            .bind(&lease.owner)
            .bind(micros(lease.until))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO serials (serial, account_id, order_id, reserved_at) \
                 SELECT $1, account_id, id, $3 FROM orders WHERE id = $2",
            )
            .bind(serial.as_str())
            .bind(id.as_str())
            .bind(micros(at))
            .execute(&mut *conn)
            .await
            .map_err(write_err("serial already reserved"))?;
            Ok(true)
        })
    }

    async fn renew_order_lease(&self, id: &OrderId, lease: &Lease) -> SaResult<bool> {
        let (id, lease) = (id.clone(), lease.clone());
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE orders SET processing_until = $3 \
                 WHERE id = $1 AND status = 'processing' AND processing_owner = $2",
            )
            .bind(id.as_str())
            .bind(&lease.owner)
            .bind(micros(lease.until))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
    }

    async fn claim_processing_order(
        &self,
        id: &OrderId,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> SaResult<bool> {
        let (id, lease) = (id.clone(), lease.clone());
        on_write!(self.db, Failure, |conn| {
            // As for challenges, the WHERE is the compare: of two instances claiming at once
            // only the first UPDATE matches.
            let changed = sqlx::query(
                "UPDATE orders SET processing_owner = $2, processing_until = $3 \
                 WHERE id = $1 AND status = 'processing' \
                 AND COALESCE(processing_until, 0) <= $4",
            )
            .bind(id.as_str())
            .bind(&lease.owner)
            .bind(micros(lease.until))
            .bind(micros(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
    }

    async fn reserve_serial(
        &self,
        serial: &Serial,
        account: &AccountId,
        order: &OrderId,
        at: OffsetDateTime,
    ) -> SaResult<()> {
        let (serial, account, order) = (serial.clone(), account.clone(), order.clone());
        on_write!(self.db, Failure, |conn| {
            sqlx::query(
                "INSERT INTO serials (serial, account_id, order_id, reserved_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(serial.as_str())
            .bind(account.as_str())
            .bind(order.as_str())
            .bind(micros(at))
            .execute(&mut *conn)
            .await
            .map_err(write_err("serial already reserved"))?;
            Ok(())
        })
    }

    async fn finalize_order(&self, cert: &Certificate) -> SaResult<()> {
        let identifiers = to_json(&cert.identifiers)?;
        let names: BTreeSet<String> = cert
            .identifiers
            .iter()
            .filter(|i| i.typ == IdentifierType::Dns)
            .map(|i| reversed_name(&i.value))
            .collect();
        let (revoked_at, reason) = match &cert.revocation {
            Some(r) => (Some(micros(r.revoked_at)), Some(i64::from(r.reason.code()))),
            None => (None, None),
        };
        let stats = crate::stats::IssuanceDelta::new(cert, self.db.dialect());
        let cert = cert.clone();
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE orders SET status = 'valid', certificate_serial = $2 \
                 WHERE id = $1 AND status = 'processing'",
            )
            .bind(cert.order_id.as_str())
            .bind(cert.serial.as_str())
            .execute(&mut *conn)
            .await
            .map_err(write_err("serial already used by another order"))?
            .rows_affected();
            if changed == 0 {
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = $1")
                    .bind(cert.order_id.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                return Err(precondition_failed(exists, "order is not processing").into());
            }
            let upgraded = sqlx::query(
                "UPDATE certificates SET der = $2, precertificate = 0 \
                 WHERE serial = $1 AND order_id = $3 AND precertificate = 1",
            )
            .bind(cert.serial.as_str())
            .bind(&cert.der)
            .bind(cert.order_id.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if upgraded == 0 {
                insert_certificate!(conn, cert, identifiers, names, revoked_at, reason, 0_i64);
            }
            crate::stats::record_issuance!(conn, &stats);
            Ok(())
        })
    }

    async fn fail_order(&self, id: &OrderId, owner: Option<&str>, error: &Problem) -> SaResult<()> {
        let error = to_json(error)?;
        let id = id.clone();
        let owner = owner.map(str::to_owned);
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE orders SET status = 'invalid', error = $2 \
                 WHERE id = $1 AND status = 'processing' \
                 AND ($3 IS NULL OR processing_owner = $3)",
            )
            .bind(id.as_str())
            .bind(&error)
            .bind(owner.as_deref())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                return Err(precondition_failed(exists, "order is not processing").into());
            }
            Ok(())
        })
    }

    async fn add_precertificate(&self, cert: &Certificate) -> SaResult<()> {
        let identifiers = to_json(&cert.identifiers)?;
        let names: BTreeSet<String> = cert
            .identifiers
            .iter()
            .filter(|i| i.typ == IdentifierType::Dns)
            .map(|i| reversed_name(&i.value))
            .collect();
        let (revoked_at, reason): (Option<i64>, Option<i64>) = (None, None);
        let cert = cert.clone();
        on_write!(self.db, Failure, |conn| {
            let processing: Option<String> =
                sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
                    .bind(cert.order_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
            match processing.as_deref() {
                None => return Err(SaError::NotFound.into()),
                Some(s) if s != OrderStatus::Processing.db() => {
                    return Err(SaError::Conflict("order is not processing").into());
                }
                Some(_) => {}
            }
            insert_certificate!(conn, cert, identifiers, names, revoked_at, reason, 1_i64);
            Ok(())
        })
    }

    async fn get_order_precertificate(&self, order: &OrderId) -> SaResult<Option<Certificate>> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, CertificateRow>(concat!(
                "SELECT ",
                certificate_columns!(),
                " FROM certificates WHERE order_id = $1 AND precertificate = 1 \
                 ORDER BY not_before DESC, serial DESC LIMIT 1"
            ))
            .bind(order.as_str())
            .fetch_optional(conn)
            .await?
        });
        row.map(CertificateRow::into_certificate).transpose()
    }

    async fn get_issued(&self, serial: &Serial) -> SaResult<Certificate> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, CertificateRow>(concat!(
                "SELECT ",
                certificate_columns!(),
                " FROM certificates WHERE serial = $1"
            ))
            .bind(serial.as_str())
            .fetch_optional(conn)
            .await?
        });
        row.ok_or(SaError::NotFound)?.into_certificate()
    }

    async fn get_stale_processing_orders(&self, now: OffsetDateTime) -> SaResult<Vec<Order>> {
        let rows = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, OrderRow>(STALE_PROCESSING_ORDERS)
                .bind(micros(now))
                .fetch_all(conn)
                .await?
        });
        orders_from_rows(rows)
    }

    async fn get_certificate(&self, serial: &Serial) -> SaResult<Certificate> {
        let row = on_read!(self.db, Failure, |conn| {
            sqlx::query_as::<_, CertificateRow>(concat!(
                "SELECT ",
                certificate_columns!(),
                " FROM certificates WHERE serial = $1 AND precertificate = 0"
            ))
            .bind(serial.as_str())
            .fetch_optional(conn)
            .await?
        });
        row.ok_or(SaError::NotFound)?.into_certificate()
    }

    async fn revoke_certificate(&self, serial: &Serial, revocation: &Revocation) -> SaResult<()> {
        let (serial, revocation) = (serial.clone(), revocation.clone());
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE certificates SET revoked_at = $2, revocation_reason = $3 \
                 WHERE serial = $1 AND revoked_at IS NULL",
            )
            .bind(serial.as_str())
            .bind(micros(revocation.revoked_at))
            .bind(i64::from(revocation.reason.code()))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                let exists: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE serial = $1")
                        .bind(serial.as_str())
                        .fetch_one(&mut *conn)
                        .await?;
                return Err(precondition_failed(exists, "certificate already revoked").into());
            }
            sqlx::query("UPDATE revocation_epoch SET epoch = epoch + 1 WHERE id = 1")
                .execute(&mut *conn)
                .await?;
            crate::stats::record_revocation!(conn, serial.as_str());
            Ok(())
        })
    }

    async fn count_certificates_for_domain(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> SaResult<u64> {
        // "com.example" itself, plus the byte range of everything starting "com.example."
        // ('/' is the byte after '.').
        let exact = reversed_name(registered_domain);
        let from = format!("{exact}.");
        let to = format!("{exact}/");
        let n: i64 = on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar(
                "SELECT COUNT(DISTINCT serial) FROM certificate_names \
                 WHERE (reversed_name = $1 OR (reversed_name >= $2 AND reversed_name < $3)) \
                 AND not_before >= $4",
            )
            .bind(&exact)
            .bind(&from)
            .bind(&to)
            .bind(micros(since))
            .fetch_one(conn)
            .await?
        });
        Ok(count(n))
    }

    async fn mark_for_renewal(
        &self,
        selector: &RenewalSelector,
        at: OffsetDateTime,
    ) -> SaResult<u64> {
        let at = micros(at);
        let selector = selector.clone();
        on_write!(self.db, Failure, |conn| {
            let q = match &selector {
                RenewalSelector::Serial(serial) => {
                    sqlx::query("UPDATE certificates SET renew_by = $1 WHERE serial = $2")
                        .bind(at)
                        .bind(serial.as_str())
                }
                RenewalSelector::Account(account) => {
                    sqlx::query("UPDATE certificates SET renew_by = $1 WHERE account_id = $2")
                        .bind(at)
                        .bind(account.as_str())
                }
                RenewalSelector::Issuer(issuer) => {
                    sqlx::query("UPDATE certificates SET renew_by = $1 WHERE issuer_id = $2")
                        .bind(at)
                        .bind(issuer.as_str())
                }
                RenewalSelector::IssuedBetween(from, to) => sqlx::query(
                    "UPDATE certificates SET renew_by = $1 \
                     WHERE not_before >= $2 AND not_before < $3",
                )
                .bind(at)
                .bind(micros(*from))
                .bind(micros(*to)),
            };
            Ok(q.execute(&mut *conn).await?.rows_affected())
        })
    }

    async fn mark_replaced(&self, serial: &Serial, by: &OrderId) -> SaResult<()> {
        let (serial, by) = (serial.clone(), by.clone());
        on_write!(self.db, Failure, |conn| {
            let changed = sqlx::query(
                "UPDATE certificates SET replaced_by = $2 \
                 WHERE serial = $1 AND replaced_by IS NULL",
            )
            .bind(serial.as_str())
            .bind(by.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(SaError::Conflict("certificate already replaced").into());
            }
            Ok(())
        })
    }

    async fn reserve_replacement(
        &self,
        serial: &Serial,
        expected: Option<&OrderId>,
        by: &OrderId,
    ) -> SaResult<()> {
        let (serial, by) = (serial.clone(), by.clone());
        let expected = expected.cloned();
        on_write!(self.db, Failure, |conn| {
            let changed = match &expected {
                None => sqlx::query(
                    "UPDATE certificates SET replaced_by = $2 \
                     WHERE serial = $1 AND replaced_by IS NULL",
                )
                .bind(serial.as_str())
                .bind(by.as_str()),
                Some(old) => sqlx::query(
                    "UPDATE certificates SET replaced_by = $2 \
                     WHERE serial = $1 AND replaced_by = $3",
                )
                .bind(serial.as_str())
                .bind(by.as_str())
                .bind(old.as_str()),
            }
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 1 {
                return Ok(());
            }
            let exists: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM certificates WHERE serial = $1")
                    .bind(serial.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
            if exists == 0 {
                return Err(SaError::NotFound.into());
            }
            Err(SaError::Conflict("certificate already has a replacement").into())
        })
    }

    async fn get_certificates(
        &self,
        selector: &CertificateSelector,
        now: OffsetDateTime,
        include_revoked: bool,
        limit: u64,
    ) -> SaResult<Vec<Certificate>> {
        let now = micros(now);
        let limit = clamp(limit);
        let revoked = if include_revoked {
            ""
        } else {
            " AND revoked_at IS NULL"
        };
        let rows: Vec<CertificateRow> = on_read!(self.db, Failure, |conn| {
            let mut q = query_builder(conn, "SELECT ");
            q.push(certificate_columns!());
            q.push(" FROM certificates WHERE not_after > ");
            q.push_bind(now);
            q.push(revoked);
            match selector {
                CertificateSelector::Account(a) => {
                    q.push(" AND account_id = ")
                        .push_bind(a.as_str().to_owned());
                }
                CertificateSelector::SpkiSha256(h) => {
                    q.push(" AND spki_sha256 = ")
                        .push_bind(h.to_ascii_lowercase());
                }
                CertificateSelector::Identifier(id) if id.typ == IdentifierType::Dns => {
                    q.push(
                        " AND serial IN (SELECT serial FROM certificate_names \
                         WHERE reversed_name = ",
                    )
                    .push_bind(reversed_name(&id.value))
                    .push(")");
                }
                CertificateSelector::Identifier(id) => {
                    // IP addresses have no name index; match the JSON text, checked below.
                    q.push(" AND identifiers LIKE ")
                        .push_bind(format!("%\"{}\"%", id.value));
                }
            }
            q.push(" ORDER BY not_before, serial LIMIT ")
                .push_bind(limit);
            q.build_query_as::<CertificateRow>().fetch_all(conn).await?
        });
        let mut certs = rows
            .into_iter()
            .map(CertificateRow::into_certificate)
            .collect::<SaResult<Vec<_>>>()?;
        if let CertificateSelector::Identifier(id) = selector {
            certs.retain(|c| c.identifiers.contains(id));
        }
        Ok(certs)
    }

    async fn get_revoked_certificates(
        &self,
        issuer_id: &str,
        not_after_after: OffsetDateTime,
    ) -> SaResult<Vec<RevokedCertificate>> {
        let rows: Vec<(String, i64, i64, i64)> = on_read!(self.db, Failure, |conn| {
            sqlx::query_as(
                "SELECT serial, crl_shard, revoked_at, revocation_reason FROM certificates \
                 WHERE issuer_id = $1 AND not_after > $2 AND revoked_at IS NOT NULL \
                 ORDER BY serial",
            )
            .bind(issuer_id)
            .bind(micros(not_after_after))
            .fetch_all(conn)
            .await?
        });
        rows.into_iter()
            .map(|(serial, shard, at, code)| {
                Ok(RevokedCertificate {
                    serial: Serial(serial),
                    crl_shard: u32::try_from(shard).map_err(|_| {
                        SaError::Corrupt(format!("certificates.crl_shard: {shard}"))
                    })?,
                    revocation: revocation_from(at, code)?,
                })
            })
            .collect()
    }

    async fn get_revocation_epoch(&self) -> SaResult<i64> {
        Ok(on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar("SELECT epoch FROM revocation_epoch WHERE id = 1")
                .fetch_one(conn)
                .await?
        }))
    }

    async fn put_crl(&self, crl: &StoredCrl) -> SaResult<()> {
        let number = i64::try_from(crl.info.number)
            .map_err(|_| SaError::Conflict("CRL number too large"))?;
        let crl = crl.clone();
        on_write!(self.db, Failure, |conn| {
            let i = &crl.info;
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT number FROM crls WHERE issuer_id = $1 AND shard = $2")
                    .bind(&i.issuer_id)
                    .bind(i64::from(i.shard))
                    .fetch_optional(&mut *conn)
                    .await?;
            match stored {
                Some(n) if n >= number => {
                    return Err(SaError::Conflict("CRL number not increasing").into());
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE crls SET number = $3, this_update = $4, next_update = $5, \
                         entries = $6, der = $7 WHERE issuer_id = $1 AND shard = $2",
                    )
                    .bind(&i.issuer_id)
                    .bind(i64::from(i.shard))
                    .bind(number)
                    .bind(micros(i.this_update))
                    .bind(micros(i.next_update))
                    .bind(clamp(i.entries))
                    .bind(&crl.der)
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO crls (issuer_id, shard, number, this_update, next_update, \
                         entries, der) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&i.issuer_id)
                    .bind(i64::from(i.shard))
                    .bind(number)
                    .bind(micros(i.this_update))
                    .bind(micros(i.next_update))
                    .bind(clamp(i.entries))
                    .bind(&crl.der)
                    .execute(&mut *conn)
                    .await
                    .map_err(write_err("CRL stored concurrently"))?;
                }
            }
            Ok(())
        })
    }

    async fn get_crl(&self, issuer_id: &str, shard: u32) -> SaResult<StoredCrl> {
        let row: Option<(String, i64, i64, i64, i64, i64, Vec<u8>)> =
            on_read!(self.db, Failure, |conn| {
                sqlx::query_as(
                    "SELECT issuer_id, shard, number, this_update, next_update, entries, der \
                 FROM crls WHERE issuer_id = $1 AND shard = $2",
                )
                .bind(issuer_id)
                .bind(i64::from(shard))
                .fetch_optional(conn)
                .await?
            });
        let (issuer_id, shard, number, this_update, next_update, entries, der) =
            row.ok_or(SaError::NotFound)?;
        Ok(StoredCrl {
            info: crl_info(issuer_id, shard, number, this_update, next_update, entries)?,
            der,
        })
    }

    async fn get_crl_infos(&self) -> SaResult<Vec<CrlInfo>> {
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = on_read!(self.db, Failure, |conn| {
            sqlx::query_as(
                "SELECT issuer_id, shard, number, this_update, next_update, entries \
                 FROM crls ORDER BY issuer_id, shard",
            )
            .fetch_all(conn)
            .await?
        });
        rows.into_iter()
            .map(|(i, s, n, t, nu, e)| crl_info(i, s, n, t, nu, e))
            .collect()
    }

    async fn block_key(&self, key: &BlockedKey) -> SaResult<()> {
        let key = key.clone();
        on_write!(self.db, Failure, |conn| {
            sqlx::query(
                "INSERT INTO blocked_keys (spki_sha256, jwk_thumbprint, blocked_at, comment) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (spki_sha256) DO NOTHING",
            )
            .bind(key.spki_sha256.to_ascii_lowercase())
            .bind(key.jwk_thumbprint.as_deref())
            .bind(micros(key.blocked_at))
            .bind(&key.comment)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    async fn is_key_blocked(&self, spki_sha256: &str) -> SaResult<bool> {
        let n: i64 = on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar("SELECT COUNT(*) FROM blocked_keys WHERE spki_sha256 = $1")
                .bind(spki_sha256.to_ascii_lowercase())
                .fetch_one(conn)
                .await?
        });
        Ok(n > 0)
    }

    async fn is_jwk_blocked(&self, thumbprint: &str) -> SaResult<bool> {
        let n: i64 = on_read!(self.db, Failure, |conn| {
            sqlx::query_scalar("SELECT COUNT(*) FROM blocked_keys WHERE jwk_thumbprint = $1")
                .bind(thumbprint)
                .fetch_one(conn)
                .await?
        });
        Ok(n > 0)
    }
}

fn crl_info(
    issuer_id: String,
    shard: i64,
    number: i64,
    this_update: i64,
    next_update: i64,
    entries: i64,
) -> SaResult<CrlInfo> {
    let corrupt = |what: &str, v: i64| SaError::Corrupt(format!("crls.{what}: {v}"));
    Ok(CrlInfo {
        issuer_id,
        shard: u32::try_from(shard).map_err(|_| corrupt("shard", shard))?,
        number: u64::try_from(number).map_err(|_| corrupt("number", number))?,
        this_update: from_micros(this_update)?,
        next_update: from_micros(next_update)?,
        entries: count(entries),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sqlx::{Connection, Row};

    /// Recovery's read of stale orders finds them through the partial index of `processing`
    /// orders, not by reading every order (it runs every 30 s on every RA instance).
    #[tokio::test]
    async fn recovery_reads_only_the_processing_orders() {
        assert_eq!(OrderStatus::Processing.db(), "processing");
        let dir = tempfile::tempdir().unwrap();
        SqlStorage::open_sqlite_in(dir.path())
            .await
            .unwrap()
            .close()
            .await;
        let url = format!("sqlite://{}", dir.path().join("cairn.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {STALE_PROCESSING_ORDERS}"
        )))
        .bind(0_i64)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(3))
        .collect();
        // A walk of the partial index is a walk of the processing orders alone.
        assert_eq!(plan[0], "SCAN o USING INDEX orders_processing", "{plan:?}");
        assert!(!plan.iter().any(|step| step == "SCAN o"), "{plan:?}");
    }
}
