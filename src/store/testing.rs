//! Test fixtures for the stores: a fresh PostgreSQL database per test.
//!
//! The unit tests use this module as `crate::store::testing`; the integration
//! tests include the same file (`#[path]` in tests/api/support.rs), so both
//! create, name and skip their databases the same way. It therefore uses
//! nothing from the crate.

use std::io::Write;
use std::time::Duration;

use sqlx::Connection;

/// The test PostgreSQL server, without a database: `CLIPFORGE_TEST_POSTGRES`,
/// or the local one with trust auth.
pub(crate) fn postgres_server() -> String {
    std::env::var("CLIPFORGE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Whether a missing PostgreSQL fails the test instead of skipping it: on CI
/// (`CI=true`), and in the suite's PostgreSQL pass (`CLIPFORGE_TEST_RECORDS=postgres`),
/// where a skip would pass a run that tested nothing.
pub(crate) fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("CLIPFORGE_TEST_RECORDS").is_ok_and(|v| v == "postgres")
}

/// A new, empty database on the test server (named `clipforge_test_…`, which
/// `tests/run.sh` drops after the run); returns its URL.
///
/// Without a server answering, prints `SKIPPED <test>: …` saying why and
/// returns None, so the caller skips its PostgreSQL part; when
/// [`postgres_required`], panics instead. Connecting is given 5 s of tokio
/// time, so call this before pausing the clock.
pub(crate) async fn fresh_postgres() -> Option<String> {
    let server = postgres_server();
    let connect = sqlx::PgConnection::connect(&format!("{server}/postgres"));
    let mut admin = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return no_postgres(&server, &e.to_string()),
        Err(_) => return no_postgres(&server, "no answer within 5 s"),
    };
    let name = format!("clipforge_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {name} on {}: {e}", host_of(&server)));
    let _ = admin.close().await;
    Some(format!("{server}/{name}"))
}

/// Says that (or, when required, fails because) no server answered.
fn no_postgres(server: &str, reason: &str) -> Option<String> {
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let host = host_of(server);
    if postgres_required() {
        panic!(
            "{test}: no PostgreSQL at {host} ({reason}), and CI or CLIPFORGE_TEST_RECORDS=postgres needs one \
             (set CLIPFORGE_TEST_POSTGRES or start one)"
        );
    }
    // Straight to stderr, not through `eprintln!`, which the test harness
    // captures and shows only for a failed test.
    let line =
        format!("SKIPPED {test}: no PostgreSQL at {host} ({reason}) (set CLIPFORGE_TEST_POSTGRES or start one)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// `host:port` of a server URL, without the user or password.
fn host_of(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_named_without_credentials() {
        assert_eq!(host_of("postgres://postgres@127.0.0.1:5432"), "127.0.0.1:5432");
        assert_eq!(host_of("postgres://u:secret@db.internal:6543/x?sslmode=disable"), "db.internal:6543");
        assert_eq!(host_of("postgresql://localhost"), "localhost");
    }

    #[tokio::test]
    async fn a_fresh_database_is_empty_or_the_test_says_it_skipped() {
        let Some(url) = fresh_postgres().await else { return };
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(tables, 0, "{url} is not empty");
        assert_ne!(fresh_postgres().await, Some(url), "each call makes a database of its own");
    }
}
