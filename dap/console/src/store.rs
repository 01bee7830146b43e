//! The console's tables (migration 0006 of the DAP datastore) on SQLite or PostgreSQL, through
//! `cairn-db`: every statement is written once for both backends. Lookups that belong to an
//! account take the account ID and match it in SQL, so a row of another account is simply not
//! found — the access rule lives in the query, not in each caller.

use cairn_db::{Db, DbError, on_read, on_write};
use sqlx::Row;

/// Why a console storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The row exists already (an e-mail address taken, a token prefix reused).
    #[error("{0} already exists")]
    Conflict(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e.into())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

fn unique(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            StoreError::Conflict(what)
        }
        _ => e.into(),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads a `console_tasks` row selected in the order of [`TaskRow`]'s fields (a macro, so it is
/// compiled for each backend's row type).
macro_rules! task_row {
    () => {
        |r| -> std::result::Result<TaskRow, sqlx::Error> {
            Ok(TaskRow {
                task_id: r.try_get(0)?,
                account_id: r.try_get(1)?,
                name: r.try_get(2)?,
                metric: r.try_get(3)?,
                parameters: r.try_get(4)?,
                helper: r.try_get(5)?,
                credential_id: r.try_get(6)?,
                created_at: uint(r.try_get(7)?),
            })
        }
    };
}

/// A person who can log in.
#[derive(Debug, Clone)]
pub struct User {
    /// Random ID.
    pub user_id: String,
    /// Log-in name.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose.
    pub user_id: String,
    /// Their e-mail address.
    pub email: String,
    /// The token every state-changing request of this session must carry.
    pub csrf_token: String,
}

/// An account (several people may share it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    /// Random ID.
    pub account_id: String,
    /// Its name.
    pub name: String,
}

/// An API token as listed: never the token, only its prefix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiTokenView {
    /// ID.
    pub token_id: String,
    /// The first characters, to recognise it.
    pub prefix: String,
    /// Its name.
    pub name: String,
    /// When made.
    pub created_at: u64,
    /// When revoked.
    pub revoked_at: Option<u64>,
}

/// A helper aggregator an account paired with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HelperView {
    /// ID.
    pub helper_id: String,
    /// Its name.
    pub name: String,
    /// Its DAP base URL.
    pub dap_url: String,
}

/// A collector credential: the public HPKE config only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialView {
    /// ID.
    pub credential_id: String,
    /// Its name.
    pub name: String,
    /// The encoded `HpkeConfig`, unpadded base64url.
    pub hpke_config: String,
    /// `browser` or `server`.
    pub generated_by: String,
    /// When made.
    pub created_at: u64,
}

/// A task an account made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    /// The DAP task ID (base64url).
    pub task_id: String,
    /// Owner.
    pub account_id: String,
    /// Metric name.
    pub name: String,
    /// The metric (JSON of [`crate::metric::Metric`]).
    pub metric: String,
    /// The task parameters (JSON, as clients and `cairn dap collect` read them).
    pub parameters: String,
    /// `shared` or a helper ID.
    pub helper: String,
    /// The collector credential.
    pub credential_id: String,
    /// When made.
    pub created_at: u64,
}

/// Why a member was not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveMember {
    /// Removed.
    Removed,
    /// Nobody with that address is a member.
    NotAMember,
    /// They are the only member: an account keeps at least one.
    LastMember,
}

/// A collected result an account stored for its task's chart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredResult {
    /// The batch: `<start>+<duration>` for a time interval, else an ID.
    pub batch: String,
    /// The smallest interval holding the batch's reports: start, POSIX seconds.
    pub interval_start: u64,
    /// Its length in seconds.
    pub interval_duration: u64,
    /// Reports in the batch.
    pub report_count: u64,
    /// The aggregate as the collector decrypted it (JSON: a number or an array of numbers).
    pub aggregate_result: serde_json::Value,
    /// When stored.
    pub stored_at: u64,
}

/// The console's storage, in the DAP datastore's database.
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// The console's tables in `db` (migrated with the DAP schema).
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// Adds a user, an account named after them and their membership, in one write.
    pub async fn put_user_with_account(
        &self,
        user_id: &str,
        email: &str,
        password_hash: &str,
        account_id: &str,
        now: u64,
    ) -> Result<()> {
        let (user_id, email, hash, account_id) = (
            user_id.to_owned(),
            email.to_owned(),
            password_hash.to_owned(),
            account_id.to_owned(),
        );
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query(
                "INSERT INTO console_users (user_id, email, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&user_id)
            .bind(&email)
            .bind(&hash)
            .bind(int(now))
            .execute(&mut *conn)
            .await
            .map_err(unique("user"))?;
            sqlx::query(
                "INSERT INTO console_accounts (account_id, name, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&account_id)
            .bind(&email)
            .bind(int(now))
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO console_memberships (account_id, user_id, created_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(&account_id)
            .bind(&user_id)
            .bind(int(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// Whether anyone has a login yet.
    pub async fn any_user(&self) -> Result<bool> {
        Ok(on_read!(self.db, |conn| {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_users")
                .fetch_one(&mut *conn)
                .await?;
            n > 0
        }))
    }

    /// The user with this e-mail address.
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT user_id, email, password_hash FROM console_users WHERE email = $1",
            )
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| -> std::result::Result<_, sqlx::Error> {
                Ok(User {
                    user_id: r.try_get(0)?,
                    email: r.try_get(1)?,
                    password_hash: r.try_get(2)?,
                })
            })
            .transpose()?
        }))
    }

    /// Stores a session (by the hash of its cookie value).
    pub async fn put_session(
        &self,
        hash: [u8; 32],
        user_id: &str,
        csrf: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<()> {
        let (user_id, csrf) = (user_id.to_owned(), csrf.to_owned());
        on_write!(self.db, |conn| -> Result<()> {
            // Expired sessions go as new ones come.
            sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1")
                .bind(int(now))
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO console_sessions (session_hash, user_id, csrf_token, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(hash.to_vec())
            .bind(&user_id)
            .bind(&csrf)
            .bind(int(expires_at))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// The unexpired session with this hash.
    pub async fn get_session(&self, hash: [u8; 32], now: u64) -> Result<Option<Session>> {
        Ok(on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT s.user_id, u.email, s.csrf_token FROM console_sessions s \
                 JOIN console_users u ON u.user_id = s.user_id \
                 WHERE s.session_hash = $1 AND s.expires_at >= $2",
            )
            .bind(hash.to_vec())
            .bind(int(now))
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| -> std::result::Result<_, sqlx::Error> {
                Ok(Session {
                    user_id: r.try_get(0)?,
                    email: r.try_get(1)?,
                    csrf_token: r.try_get(2)?,
                })
            })
            .transpose()?
        }))
    }

    /// Ends a session.
    pub async fn delete_session(&self, hash: [u8; 32]) -> Result<()> {
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query("DELETE FROM console_sessions WHERE session_hash = $1")
                .bind(hash.to_vec())
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    /// The accounts `user_id` is a member of.
    pub async fn get_accounts_of(&self, user_id: &str) -> Result<Vec<Account>> {
        Ok(on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT a.account_id, a.name FROM console_accounts a \
                 JOIN console_memberships m ON m.account_id = a.account_id \
                 WHERE m.user_id = $1 ORDER BY a.created_at, a.account_id",
            )
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| -> std::result::Result<_, sqlx::Error> {
                    Ok(Account {
                        account_id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        }))
    }

    /// The account, if `user_id` is a member.
    pub async fn get_account_for_member(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Account>> {
        Ok(self
            .get_accounts_of(user_id)
            .await?
            .into_iter()
            .find(|a| a.account_id == account_id))
    }

    /// The account's members' e-mail addresses.
    pub async fn get_members(&self, account_id: &str) -> Result<Vec<String>> {
        Ok(on_read!(self.db, |conn| {
            sqlx::query_scalar(
                "SELECT u.email FROM console_users u \
                 JOIN console_memberships m ON m.user_id = u.user_id \
                 WHERE m.account_id = $1 ORDER BY u.email",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?
        }))
    }

    /// Adds the user with `email` to the account; false if there is no such user.
    pub async fn put_membership(&self, account_id: &str, email: &str, now: u64) -> Result<bool> {
        let (account_id, email) = (account_id.to_owned(), email.to_owned());
        on_write!(self.db, |conn| -> Result<bool> {
            let n = sqlx::query(
                "INSERT INTO console_memberships (account_id, user_id, created_at) \
                 SELECT $1, user_id, $3 FROM console_users WHERE email = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&account_id)
            .bind(&email)
            .bind(int(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if n > 0 {
                return Ok(true);
            }
            let exists: Option<String> =
                sqlx::query_scalar("SELECT user_id FROM console_users WHERE email = $1")
                    .bind(&email)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(exists.is_some())
        })
    }

    /// Stores a new API token (its hash and prefix).
    pub async fn put_api_token(
        &self,
        token_id: &str,
        account_id: &str,
        prefix: &str,
        hash: [u8; 32],
        name: &str,
        now: u64,
    ) -> Result<()> {
        let (token_id, account_id, prefix, name) = (
            token_id.to_owned(),
            account_id.to_owned(),
            prefix.to_owned(),
            name.to_owned(),
        );
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query(
                "INSERT INTO console_api_tokens \
                 (token_id, account_id, prefix, token_hash, name, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token_id)
            .bind(&account_id)
            .bind(&prefix)
            .bind(hash.to_vec())
            .bind(&name)
            .bind(int(now))
            .execute(&mut *conn)
            .await
            .map_err(unique("token prefix"))?;
            Ok(())
        })
    }

    /// The account of the unrevoked token with this prefix, and its stored hash.
    pub async fn get_api_token(&self, prefix: &str) -> Result<Option<(String, Vec<u8>)>> {
        Ok(on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT account_id, token_hash FROM console_api_tokens \
                 WHERE prefix = $1 AND revoked_at IS NULL",
            )
            .bind(prefix)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| -> std::result::Result<_, sqlx::Error> {
                Ok((r.try_get(0)?, r.try_get(1)?))
            })
            .transpose()?
        }))
    }

    /// The account's tokens, newest first.
    pub async fn get_api_tokens(&self, account_id: &str) -> Result<Vec<ApiTokenView>> {
        Ok(on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT token_id, prefix, name, created_at, revoked_at FROM console_api_tokens \
                 WHERE account_id = $1 ORDER BY created_at DESC, token_id",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| -> std::result::Result<_, sqlx::Error> {
                    Ok(ApiTokenView {
                        token_id: r.try_get(0)?,
                        prefix: r.try_get(1)?,
                        name: r.try_get(2)?,
                        created_at: uint(r.try_get(3)?),
                        revoked_at: r.try_get::<Option<i64>, _>(4)?.map(uint),
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        }))
    }

    /// Revokes the account's token; false if the account has no such (unrevoked) token.
    pub async fn revoke_api_token(
        &self,
        account_id: &str,
        token_id: &str,
        now: u64,
    ) -> Result<bool> {
        let (account_id, token_id) = (account_id.to_owned(), token_id.to_owned());
        on_write!(self.db, |conn| -> Result<bool> {
            let n = sqlx::query(
                "UPDATE console_api_tokens SET revoked_at = $3 \
                 WHERE account_id = $1 AND token_id = $2 AND revoked_at IS NULL",
            )
            .bind(&account_id)
            .bind(&token_id)
            .bind(int(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    /// Stores a paired helper (its control token sealed by the caller).
    pub async fn put_helper(
        &self,
        helper_id: &str,
        account_id: &str,
        name: &str,
        dap_url: &str,
        sealed_token: Vec<u8>,
        now: u64,
    ) -> Result<()> {
        let v = [helper_id, account_id, name, dap_url].map(str::to_owned);
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query(
                "INSERT INTO console_helpers \
                 (helper_id, account_id, name, dap_url, control_token, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&v[0])
            .bind(&v[1])
            .bind(&v[2])
            .bind(&v[3])
            .bind(sealed_token)
            .bind(int(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// The account's helpers.
    pub async fn get_helpers(&self, account_id: &str) -> Result<Vec<HelperView>> {
        Ok(on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT helper_id, name, dap_url FROM console_helpers \
                 WHERE account_id = $1 ORDER BY created_at, helper_id",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| -> std::result::Result<_, sqlx::Error> {
                    Ok(HelperView {
                        helper_id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        dap_url: r.try_get(2)?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        }))
    }

    /// The account's helper with its sealed control token.
    pub async fn get_helper(
        &self,
        account_id: &str,
        helper_id: &str,
    ) -> Result<Option<(HelperView, Vec<u8>)>> {
        Ok(on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT helper_id, name, dap_url, control_token FROM console_helpers \
                 WHERE account_id = $1 AND helper_id = $2",
            )
            .bind(account_id)
            .bind(helper_id)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|r| -> std::result::Result<_, sqlx::Error> {
                Ok((
                    HelperView {
                        helper_id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        dap_url: r.try_get(2)?,
                    },
                    r.try_get(3)?,
                ))
            })
            .transpose()?
        }))
    }

    /// Stores a collector credential's public part.
    pub async fn put_credential(
        &self,
        credential_id: &str,
        account_id: &str,
        name: &str,
        hpke_config: &str,
        generated_by: &str,
        now: u64,
    ) -> Result<()> {
        let v = [credential_id, account_id, name, hpke_config, generated_by].map(str::to_owned);
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query(
                "INSERT INTO console_collector_credentials \
                 (credential_id, account_id, name, hpke_config, generated_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&v[0])
            .bind(&v[1])
            .bind(&v[2])
            .bind(&v[3])
            .bind(&v[4])
            .bind(int(now))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }

    /// The account's collector credentials.
    pub async fn get_credentials(&self, account_id: &str) -> Result<Vec<CredentialView>> {
        Ok(on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT credential_id, name, hpke_config, generated_by, created_at \
                 FROM console_collector_credentials WHERE account_id = $1 \
                 ORDER BY created_at, credential_id",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| -> std::result::Result<_, sqlx::Error> {
                    Ok(CredentialView {
                        credential_id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        hpke_config: r.try_get(2)?,
                        generated_by: r.try_get(3)?,
                        created_at: uint(r.try_get(4)?),
                    })
                })
                .collect::<std::result::Result<Vec<_>, _>>()?
        }))
    }

    /// Stores a task the console created at both aggregators.
    pub async fn put_task(&self, task: &TaskRow) -> Result<()> {
        let t = task.clone();
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query(
                "INSERT INTO console_tasks (task_id, account_id, name, metric, parameters, \
                 helper, credential_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.task_id)
            .bind(&t.account_id)
            .bind(&t.name)
            .bind(&t.metric)
            .bind(&t.parameters)
            .bind(&t.helper)
            .bind(&t.credential_id)
            .bind(int(t.created_at))
            .execute(&mut *conn)
            .await
            .map_err(unique("task"))?;
            Ok(())
        })
    }

    /// The account's tasks (not deleted), newest first.
    pub async fn get_tasks(&self, account_id: &str) -> Result<Vec<TaskRow>> {
        Ok(on_read!(self.db, |conn| {
            let rows = sqlx::query(
                "SELECT task_id, account_id, name, metric, parameters, helper, credential_id, \
                 created_at FROM console_tasks WHERE account_id = $1 AND deleted_at IS NULL \
                 ORDER BY created_at DESC, task_id",
            )
            .bind(account_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(task_row!())
                .collect::<std::result::Result<Vec<_>, _>>()?
        }))
    }

    /// The account's task (not deleted).
    pub async fn get_task(&self, account_id: &str, task_id: &str) -> Result<Option<TaskRow>> {
        Ok(on_read!(self.db, |conn| {
            let row = sqlx::query(
                "SELECT task_id, account_id, name, metric, parameters, helper, credential_id, \
                 created_at FROM console_tasks \
                 WHERE account_id = $1 AND task_id = $2 AND deleted_at IS NULL",
            )
            .bind(account_id)
            .bind(task_id)
            .fetch_optional(&mut *conn)
            .await?;
            row.as_ref().map(task_row!()).transpose()?
        }))
    }

    /// Marks the account's task deleted; false if it has no such task.
    pub async fn delete_task(&self, account_id: &str, task_id: &str, now: u64) -> Result<bool> {
        let (account_id, task_id) = (account_id.to_owned(), task_id.to_owned());
        on_write!(self.db, |conn| -> Result<bool> {
            let n = sqlx::query(
                "UPDATE console_tasks SET deleted_at = $3 \
                 WHERE account_id = $1 AND task_id = $2 AND deleted_at IS NULL",
            )
            .bind(&account_id)
            .bind(&task_id)
            .bind(int(now))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n > 0)
        })
    }

    /// Removes the member with `email` from the account, unless they are its last member.
    pub async fn remove_member(&self, account_id: &str, email: &str) -> Result<RemoveMember> {
        let (account_id, email) = (account_id.to_owned(), email.to_owned());
        on_write!(self.db, |conn| -> Result<RemoveMember> {
            let members: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM console_memberships WHERE account_id = $1",
            )
            .bind(&account_id)
            .fetch_one(&mut *conn)
            .await?;
            let user: Option<String> = sqlx::query_scalar(
                "SELECT m.user_id FROM console_memberships m \
                 JOIN console_users u ON u.user_id = m.user_id \
                 WHERE m.account_id = $1 AND u.email = $2",
            )
            .bind(&account_id)
            .bind(&email)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(user) = user else {
                return Ok(RemoveMember::NotAMember);
            };
            if members <= 1 {
                return Ok(RemoveMember::LastMember);
            }
            sqlx::query("DELETE FROM console_memberships WHERE account_id = $1 AND user_id = $2")
                .bind(&account_id)
                .bind(&user)
                .execute(&mut *conn)
                .await?;
            Ok(RemoveMember::Removed)
        })
    }

    /// Sets a user's password hash and ends every other session of theirs (`keep`: the
    /// session that made the change).
    pub async fn set_password(&self, user_id: &str, hash: &str, keep: [u8; 32]) -> Result<()> {
        let (user_id, hash) = (user_id.to_owned(), hash.to_owned());
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query("UPDATE console_users SET password_hash = $2 WHERE user_id = $1")
                .bind(&user_id)
                .bind(&hash)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1 AND session_hash <> $2")
                .bind(&user_id)
                .bind(keep.to_vec())
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    /// The failures counted under each key in a window that has not ended at `now`.
    pub async fn get_login_failures(
        &self,
        keys: &[String],
        now: u64,
        window_secs: u64,
    ) -> Result<Vec<(String, u64, u32)>> {
        let keys = keys.to_vec();
        Ok(on_read!(self.db, |conn| {
            let mut out = Vec::new();
            for k in &keys {
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT window_start, failures FROM console_login_failures \
                     WHERE limit_key = $1 AND window_start > $2",
                )
                .bind(k)
                .bind(int(now.saturating_sub(window_secs)))
                .fetch_optional(&mut *conn)
                .await?;
                if let Some((start, n)) = row {
                    out.push((k.clone(), uint(start), u32::try_from(n).unwrap_or(u32::MAX)));
                }
            }
            out
        }))
    }

    /// Counts a failure under each key: in the key's current window, or in a new one from
    /// `now` if it ended. Windows that ended are deleted on the way.
    pub async fn count_login_failure(
        &self,
        keys: &[String],
        now: u64,
        window_secs: u64,
    ) -> Result<()> {
        let keys = keys.to_vec();
        on_write!(self.db, |conn| -> Result<()> {
            let ended = int(now.saturating_sub(window_secs));
            sqlx::query("DELETE FROM console_login_failures WHERE window_start <= $1")
                .bind(ended)
                .execute(&mut *conn)
                .await?;
            for k in &keys {
                sqlx::query(
                    "INSERT INTO console_login_failures (limit_key, window_start, failures) \
                     VALUES ($1, $2, 1) ON CONFLICT (limit_key) DO UPDATE \
                     SET failures = console_login_failures.failures + 1",
                )
                .bind(k)
                .bind(int(now))
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        })
    }

    /// Forgets the failures counted under `key`.
    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        on_write!(self.db, |conn| -> Result<()> {
            sqlx::query("DELETE FROM console_login_failures WHERE limit_key = $1")
                .bind(&key)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    /// Stores (or replaces) a collected result of the account's task; false if the account
    /// has no such task.
    pub async fn put_result(
        &self,
        account_id: &str,
        task_id: &str,
        result: &StoredResult,
    ) -> Result<bool> {
        let (account_id, task_id, r) = (account_id.to_owned(), task_id.to_owned(), result.clone());
        let json = r.aggregate_result.to_string();
        on_write!(self.db, |conn| -> Result<bool> {
            let owned: Option<String> = sqlx::query_scalar(
                "SELECT task_id FROM console_tasks \
                 WHERE account_id = $1 AND task_id = $2 AND deleted_at IS NULL",
            )
            .bind(&account_id)
            .bind(&task_id)
            .fetch_optional(&mut *conn)
            .await?;
            if owned.is_none() {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO console_results (task_id, batch, interval_start, \
                 interval_duration, report_count, aggregate_result, stored_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (task_id, batch) DO UPDATE \
                 SET interval_start = excluded.interval_start, \
                 interval_duration = excluded.interval_duration, \
                 report_count = excluded.report_count, \
                 aggregate_result = excluded.aggregate_result, stored_at = excluded.stored_at",
            )
            .bind(&task_id)
            .bind(&r.batch)
            .bind(int(r.interval_start))
            .bind(int(r.interval_duration))
            .bind(int(r.report_count))
            .bind(&json)
            .bind(int(r.stored_at))
            .execute(&mut *conn)
            .await?;
            Ok(true)
        })
    }

    /// The newest `limit` stored results of the account's task, oldest first.
    pub async fn get_results(
        &self,
        account_id: &str,
        task_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredResult>> {
        Ok(on_read!(self.db, |conn| {
            let rows: Vec<(String, i64, i64, i64, String, i64)> = sqlx::query_as(
                "SELECT r.batch, r.interval_start, r.interval_duration, r.report_count, \
                 r.aggregate_result, r.stored_at FROM console_results r \
                 JOIN console_tasks t ON t.task_id = r.task_id \
                 WHERE t.account_id = $1 AND r.task_id = $2 AND t.deleted_at IS NULL \
                 ORDER BY r.interval_start DESC, r.stored_at DESC LIMIT $3",
            )
            .bind(account_id)
            .bind(task_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .rev()
                .map(|(batch, start, duration, n, json, at)| StoredResult {
                    batch,
                    interval_start: uint(start),
                    interval_duration: uint(duration),
                    report_count: uint(n),
                    aggregate_result: serde_json::from_str(&json)
                        .unwrap_or(serde_json::Value::Null),
                    stored_at: uint(at),
                })
                .collect::<Vec<_>>()
        }))
    }
}
