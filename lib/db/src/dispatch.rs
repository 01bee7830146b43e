//! The dialect dispatch: a [`Conn`] is a connection of either backend, and
//! [`on_conn!`](crate::on_conn), [`on_read!`](crate::on_read) and [`on_write!`](crate::on_write)
//! expand one block of statements once per backend, with the connection's concrete type. There
//! is no generic code over sqlx's `Database` trait (whose bounds every caller would have to
//! spell out): each expansion is ordinary code for one backend. [`Dialect`] holds the few pieces
//! of SQL that differ.

use crate::Reader;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, QueryBuilder, SqliteConnection};

/// A backend's SQL dialect: the pieces of SQL that are not the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite: one writer at a time (the group-commit writer), so no row locks are needed.
    Sqlite,
    /// PostgreSQL: concurrent writers, isolated by row locks.
    Postgres,
}

impl Dialect {
    /// `"sqlite"` or `"postgres"`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Appended to a `SELECT` in a write to lock its rows until the write commits. Empty on
    /// SQLite, where no other write runs meanwhile.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Appended to a `SELECT` of work items in a write so that concurrent workers lock and take
    /// different rows instead of waiting for each other. Empty on SQLite.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A connection of either backend, borrowed for a read or a write. [`on_conn!`](crate::on_conn)
/// runs a block with the connection's concrete type.
#[derive(Debug)]
pub enum Conn<'c> {
    /// A SQLite connection: a reader, or the group-commit writer inside a write's savepoint.
    Sqlite(&'c mut SqliteConnection),
    /// A PostgreSQL connection: from the pool, or a write's transaction.
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    /// The connection's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The same connection, borrowed again for a shorter time (to pass it on and keep it).
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(c: &'c mut SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(c: &'c mut PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

/// A connection held for reads; put back when dropped.
#[derive(Debug)]
#[non_exhaustive]
pub enum Read {
    /// One of the SQLite reader connections.
    Sqlite(Reader),
    /// A connection of the PostgreSQL pool.
    Postgres(PoolConnection<Postgres>),
}

impl Read {
    /// The connection, for [`on_conn!`](crate::on_conn).
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Read::Sqlite(r) => Conn::Sqlite(r),
            Read::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A query builder for the connection's database (pins sqlx's type parameter inside a block
/// that [`on_conn!`](crate::on_conn) expanded).
pub fn query_builder<C: sqlx::Connection>(
    _conn: &C,
    init: &'static str,
) -> QueryBuilder<C::Database> {
    QueryBuilder::new(init)
}

/// Runs `$body` with `$c` bound to the [`Conn`]'s connection, `&mut SqliteConnection` or
/// `&mut PgConnection`: the body is written once and compiled once per backend, and the macro
/// evaluates to its value.
///
/// ```ignore
/// let n: i64 = on_conn!(conn, |c| {
///     sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(c).await?
/// });
/// ```
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::Conn::Sqlite($c) => $body,
            $crate::Conn::Postgres($c) => $body,
        }
    };
}

/// Runs `$body` (reads) with `$conn` bound to a read connection of the [`Db`](crate::Db)
/// (`&mut SqliteConnection` or `&mut PgConnection`), held for the whole body, and evaluates to
/// the body's value. Failing to get a connection returns from the enclosing function with the
/// [`DbError`](crate::DbError) converted by `?`; so does `?` inside the body.
///
/// Given an error type `E` first, errors go through `E` on their way out (`E: From<DbError>`,
/// and the enclosing function's error `From<E>`): for an enclosing error type that has no
/// conversion from sqlx's errors, such as a driver-free contract's.
///
/// ```ignore
/// let row = on_read!(self.db, |conn| {
///     sqlx::query_as("SELECT … WHERE id = $1").bind(id).fetch_optional(conn).await?
/// });
/// let row = on_read!(self.db, Failure, |conn| { … });
/// ```
#[macro_export]
macro_rules! on_read {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let mut read = $db.read().await?;
        $crate::on_conn!(read.conn(), |$conn| $body)
    }};
    ($db:expr, $err:ty, |$conn:ident| $body:expr) => {{
        let read: ::core::result::Result<_, $err> = async {
            let mut read = $db.read().await?;
            ::core::result::Result::Ok($crate::on_conn!(read.conn(), |$conn| $body))
        }
        .await;
        read?
    }};
}

/// Runs the block `$body` as one atomic write ([`Db::write`](crate::Db::write)) with `$conn`
/// bound to `&mut SqliteConnection` or `&mut PgConnection`, and evaluates to its
/// `Result<T, E>` (`E: From<DbError>`). The block's changes are kept only if it returns `Ok`;
/// `return` and `?` leave the block, not the enclosing function. It owns what it uses: values
/// it names are moved into it. Write the result type after `->` when the context does not
/// settle it.
///
/// Given an error type `E` first, the block returns `Result<T, E>` and the macro evaluates to
/// `Result<T, F>` for whatever `F: From<E>` the context asks for (as with [`on_read!`]).
///
/// ```ignore
/// on_write!(self.db, |conn| -> Result<(), MyError> {
///     let n = sqlx::query("UPDATE t SET v = $2 WHERE id = $1 AND v = $3")
///         .bind(id).bind(new).bind(old).execute(&mut *conn).await?.rows_affected();
///     if n == 0 { return Err(MyError::Conflict); }
///     Ok(())
/// })
/// ```
#[macro_export]
macro_rules! on_write {
    ($db:expr, |$conn:ident| -> $ret:ty $body:block) => {
        $db.write(move |conn| {
            let job: $crate::WriteFuture<'_, $ret> =
                Box::pin(async move { $crate::on_conn!(conn, |$conn| $body) });
            job
        })
        .await
    };
    ($db:expr, |$conn:ident| $body:block) => {
        $db.write(move |conn| Box::pin(async move { $crate::on_conn!(conn, |$conn| $body) }))
            .await
    };
    ($db:expr, $err:ty, |$conn:ident| $body:block) => {
        $db.write(move |conn| {
            let job: $crate::WriteFuture<'_, ::core::result::Result<_, $err>> =
                Box::pin(async move { $crate::on_conn!(conn, |$conn| $body) });
            job
        })
        .await
        .map_err(::core::convert::From::from)
    };
}
