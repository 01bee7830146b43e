//! Which outside services a test may use — PostgreSQL, Redis, the Python tools' virtualenv and
//! programs such as `openssl` — and what happens when one is missing.
//!
//! Outside CI a test whose service is not configured skips that part and says so: a developer
//! without PostgreSQL can still run the suite. Under CI (`CI=true` or `CI=1`, as `.ci/run` and
//! most CI systems set it) a missing service is a failure, never a silent pass: the accessors
//! panic with a message naming the variable to set and the script that sets it.
//!
//! A URL that is set is checked the same way everywhere: if nothing answers on its host and
//! port, the accessor panics at once with that address, rather than leaving each test to fail
//! later with a driver's connection error (or, worse, to treat the failure as a skip).
//!
//! This crate is a dev-dependency only; nothing in a shipped binary links it.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The PostgreSQL server tests may create schemas on, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_ENV: &str = "CAIRN_TEST_POSTGRES_URL";
/// The Redis server tests may use (each under a key prefix of its own), e.g. `redis://127.0.0.1:6379`.
pub const REDIS_ENV: &str = "CAIRN_TEST_REDIS_URL";
/// The virtualenv holding certbot and pkilint, prepared by `testing/test.sh`.
pub const VENV_ENV: &str = "CAIRN_VENV";

/// How long a reachability check waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether this is a CI run: `CI` is `true` or `1` (any case).
pub fn in_ci() -> bool {
    ci_from(&env)
}

/// The PostgreSQL URL for tests, or `None` (after saying the test skips) when it is not set
/// outside CI.
///
/// # Panics
/// Under CI when `CAIRN_TEST_POSTGRES_URL` is unset or empty, and whenever it is set but
/// nothing accepts connections at its host and port.
pub fn postgres_url() -> Option<String> {
    service_url(&env, POSTGRES_ENV, "PostgreSQL", 5432)
}

/// The Redis URL for tests, or `None` (after saying the test skips) when it is not set outside
/// CI.
///
/// # Panics
/// Under CI when `CAIRN_TEST_REDIS_URL` is unset or empty, and whenever it is set but nothing
/// accepts connections at its host and port.
pub fn redis_url() -> Option<String> {
    service_url(&env, REDIS_ENV, "Redis", 6379)
}

/// The virtualenv with certbot and pkilint, or `None` (after saying the test skips) when
/// `CAIRN_VENV` is not set outside CI.
///
/// # Panics
/// Under CI when `CAIRN_VENV` is unset or empty, and whenever it names a directory without a
/// `bin/` folder.
pub fn venv() -> Option<PathBuf> {
    venv_from(&env)
}

/// The path of `program` found on `PATH`, or `None` (after saying the check skips) outside CI.
///
/// # Panics
/// Under CI when `program` is not on `PATH`.
pub fn program(program: &str) -> Option<PathBuf> {
    program_from(&env, program)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// An environment lookup, injectable so the rules can be tested without touching the process
/// environment.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn ci_from(lookup: Lookup<'_>) -> bool {
    lookup("CI").is_some_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// A variable's non-empty value.
fn non_empty(lookup: Lookup<'_>, var: &str) -> Option<String> {
    lookup(var).filter(|v| !v.trim().is_empty())
}

/// Says the test skips outside CI; panics under CI.
fn skip_or_fail(lookup: Lookup<'_>, var: &str, what: &str) {
    if ci_from(lookup) {
        panic!(
            "CI is set but {var} is not: this test needs {what}, and under CI a missing service \
             fails the run instead of skipping. Run the tests with .ci/run (it starts PostgreSQL \
             and Redis and sets the variables) or with testing/test.sh (it prepares the \
             virtualenv), or set {var} yourself."
        );
    }
    println!("skipped: {var} not set, so the {what} part of this test did not run");
}

fn service_url(lookup: Lookup<'_>, var: &str, what: &str, default_port: u16) -> Option<String> {
    let Some(url) = non_empty(lookup, var) else {
        skip_or_fail(lookup, var, what);
        return None;
    };
    if let Some((host, port)) = host_port(&url, default_port)
        && !reachable(&host, port)
    {
        panic!(
            "{var} is set but {what} does not accept connections at {host}:{port}: start it \
             (.ci/run does) or unset {var} to skip these tests outside CI"
        );
    }
    Some(url)
}

fn venv_from(lookup: Lookup<'_>) -> Option<PathBuf> {
    let Some(dir) = non_empty(lookup, VENV_ENV) else {
        skip_or_fail(lookup, VENV_ENV, "the Python tools (certbot, pkilint)");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("bin").is_dir(),
        "{VENV_ENV}={} has no bin/ folder: prepare it with testing/test.sh",
        dir.display()
    );
    Some(dir)
}

fn program_from(lookup: Lookup<'_>, program: &str) -> Option<PathBuf> {
    let found = lookup("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            !ci_from(lookup),
            "CI is set but `{program}` is not on PATH: this test cross-checks with it, and under \
             CI a missing tool fails the run instead of skipping; install it"
        );
        println!("skipped: `{program}` not on PATH, so the check that uses it did not run");
    }
    found
}

/// The host and port a service URL points at (`scheme://[user[:password]@]host[:port][/…][?…]`),
/// or `None` when it names no TCP host (a Unix socket, say), which is then not checked.
fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

fn reachable(host: &str, port: u16) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok())
}

/// A loopback port, free for both TCP and UDP when asked, for a server a test starts (in a child
/// process or in-process) on a port the test chose.
///
/// It comes from below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`),
/// so no socket bound to port 0 and no outgoing connection can take it before, or between,
/// the test's servers binding it. A port taken from the ephemeral range could be: a parallel
/// test's in-process listener once took the port a split test had reserved for its issuer, so
/// the issuer never started while the test believed it listened. A port is never returned twice
/// in one process, and the search starts from a point that differs per process, so two test
/// binaries running at once seldom try the same ports.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failure is a test failure"
)]
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let (low, high) = non_ephemeral_range();
    let span = u32::from(high - low);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = given.len() as u32 + seed;
    for step in 0..span {
        let port = low + u16::try_from((start + step) % span).expect("within the span");
        if given.contains(&port) {
            continue;
        }
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The ports `free_port` hands out: up to 12,000 ports just below the kernel's ephemeral range
/// (Linux's default range starts at 32768), and never below 10000.
fn non_ephemeral_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    non_ephemeral_below(ephemeral_low)
}

fn non_ephemeral_below(ephemeral_low: u16) -> (u16, u16) {
    let high = ephemeral_low.max(11_000);
    (high.saturating_sub(12_000).max(10_000), high)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::TcpListener;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// The panic message of `f`, or `None` if it returned.
    fn panic_message<T>(f: impl FnOnce() -> T) -> Option<String> {
        let err = catch_unwind(AssertUnwindSafe(f)).err()?;
        Some(
            err.downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default(),
        )
    }

    /// A port on 127.0.0.1 where nothing listens (bound, then released).
    fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn ci_is_true_or_one() {
        for yes in ["true", "TRUE", "True", "1", " true "] {
            assert!(ci_from(&lookup(&[("CI", yes)])), "{yes:?}");
        }
        for no in ["", "0", "false", "no"] {
            assert!(!ci_from(&lookup(&[("CI", no)])), "{no:?}");
        }
        assert!(!ci_from(&lookup(&[])));
    }

    #[test]
    fn a_missing_service_is_skipped_outside_ci() {
        let env = lookup(&[]);
        assert_eq!(service_url(&env, POSTGRES_ENV, "PostgreSQL", 5432), None);
        assert_eq!(service_url(&env, REDIS_ENV, "Redis", 6379), None);
        assert_eq!(venv_from(&env), None);
        let env = lookup(&[("CI", "false"), (POSTGRES_ENV, "")]);
        assert_eq!(service_url(&env, POSTGRES_ENV, "PostgreSQL", 5432), None);
    }

    #[test]
    fn a_missing_service_fails_under_ci() {
        for ci in ["true", "1"] {
            let env = lookup(&[("CI", ci)]);
            let msg = panic_message(|| service_url(&env, POSTGRES_ENV, "PostgreSQL", 5432))
                .expect("CI without a PostgreSQL URL panics");
            assert!(
                msg.contains(POSTGRES_ENV) && msg.contains(".ci/run"),
                "{msg}"
            );
            let msg = panic_message(|| service_url(&env, REDIS_ENV, "Redis", 6379))
                .expect("CI without a Redis URL panics");
            assert!(msg.contains(REDIS_ENV), "{msg}");
            let msg = panic_message(|| venv_from(&env)).expect("CI without a venv panics");
            assert!(msg.contains(VENV_ENV), "{msg}");
        }
        // Set but empty counts as missing.
        let env = lookup(&[("CI", "true"), (REDIS_ENV, " ")]);
        assert!(panic_message(|| service_url(&env, REDIS_ENV, "Redis", 6379)).is_some());
    }

    #[test]
    fn an_unreachable_service_fails_in_and_out_of_ci() {
        let url = format!("redis://127.0.0.1:{}", closed_port());
        for vars in [
            vec![(REDIS_ENV, url.as_str())],
            vec![("CI", "true"), (REDIS_ENV, url.as_str())],
        ] {
            let env = lookup(&vars);
            let msg = panic_message(|| service_url(&env, REDIS_ENV, "Redis", 6379))
                .expect("an unreachable Redis panics");
            assert!(msg.contains("does not accept connections"), "{msg}");
        }
    }

    #[test]
    fn a_reachable_service_is_returned() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable");
        for ci in ["true", "false"] {
            let env = lookup(&[("CI", ci), (POSTGRES_ENV, url.as_str())]);
            assert_eq!(
                service_url(&env, POSTGRES_ENV, "PostgreSQL", 5432).as_deref(),
                Some(url.as_str())
            );
        }
    }

    #[test]
    fn a_venv_without_bin_fails() {
        let dir = std::env::temp_dir();
        let env = lookup(&[(VENV_ENV, dir.join("no-such-venv").to_str().unwrap())]);
        assert!(panic_message(|| venv_from(&env)).is_some());
    }

    #[test]
    fn a_missing_program_fails_only_under_ci() {
        let env = lookup(&[("PATH", "/nonexistent")]);
        assert_eq!(program_from(&env, "openssl"), None);
        let env = lookup(&[("CI", "true"), ("PATH", "/nonexistent")]);
        let msg = panic_message(|| program_from(&env, "openssl")).expect("CI needs openssl");
        assert!(msg.contains("openssl"), "{msg}");
    }

    #[test]
    fn host_and_port_are_read_from_service_urls() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                Some(("127.0.0.1", 5432)),
            ),
            (
                "postgresql://u:p%40ss@db.example:6000/x?sslmode=require",
                Some(("db.example", 6000)),
            ),
            ("postgres://localhost/test", Some(("localhost", 5432))),
            ("redis://127.0.0.1:6379", Some(("127.0.0.1", 6379))),
            ("redis://:secret@[::1]:6380/0", Some(("::1", 6380))),
            ("redis://[::1]", Some(("::1", 5432))),
            ("postgres:///test?host=/run/postgresql", None),
            ("not a url", None),
        ];
        for (url, want) in cases {
            let got = host_port(url, 5432);
            assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{url}");
        }
    }

    #[test]
    fn free_ports_are_below_the_ephemeral_range_bindable_and_never_repeated() {
        assert_eq!(non_ephemeral_below(32768), (20768, 32768));
        assert_eq!(non_ephemeral_below(1024), (10000, 11000));
        let (low, high) = non_ephemeral_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for &p in &ports {
            assert!((low..high).contains(&p), "{p} not in {low}..{high}");
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    }
}
