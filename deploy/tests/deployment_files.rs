//! The deployment files in `deploy/` (issue 15) say what they claim: a systemd unit per role
//! that `systemd-analyze verify` accepts, a compose file with PostgreSQL and Redis and every
//! role, a Nomad job with a group per role of the split deployment, and a multi-stage
//! Dockerfile. What can't be run here (a Nomad cluster, a container build) is listed as
//! untested in deploy/README.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The split deployment's roles, each run as `cairn <role> serve`.
const ROLES: [&str; 6] = ["wfe", "ra", "va", "ca", "sa", "nonce"];

/// The unit file of each role, plus the all-in-one `cairn serve`, with the command it runs.
/// Each split role reads its own file (`deploy/config/<role>.toml`, installed in `/etc/cairn`).
fn units() -> Vec<(String, String)> {
    let mut v = vec![(
        "cairn.service".to_owned(),
        "serve --config /etc/cairn/cairn.toml".to_owned(),
    )];
    for role in ROLES {
        v.push((
            format!("cairn-{role}.service"),
            format!("{role} serve --config /etc/cairn/{role}.toml"),
        ));
    }
    v
}

#[test]
fn every_role_has_a_systemd_unit_running_it() {
    let dir = common::deploy_dir().join("systemd");
    let on_disk: BTreeSet<String> = common::files(&dir, ".service")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = units().into_iter().map(|(u, _)| u).collect();
    assert_eq!(on_disk, expected);
    for (unit, command) in units() {
        let text = common::read(&dir.join(&unit));
        let exec: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(
            exec,
            [format!("ExecStart=/usr/local/bin/cairn {command}")],
            "{unit}"
        );
        for needed in ["User=cairn", "NoNewPrivileges=yes", "ProtectSystem=strict"] {
            assert!(text.lines().any(|l| l == needed), "{unit} lacks {needed}");
        }
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (Debian: systemd)");
        return;
    };
    assert!(out.status.success());
    // verify checks that ExecStart's program exists: point it at a stand-in executable.
    let tmp = tempfile::tempdir().unwrap();
    let program = tmp.path().join("cairn");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    set_executable(&program);
    let dir = common::deploy_dir().join("systemd");
    let mut copies = vec![];
    for (unit, _) in units() {
        let text = common::read(&dir.join(&unit))
            .replace("/usr/local/bin/cairn", &program.display().to_string());
        let copy = tmp.path().join(&unit);
        std::fs::write(&copy, text).unwrap();
        copies.push(copy);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&copies)
        .output()
        .expect("running systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{stderr}");
    // It also warns (exit 0) about unknown or misplaced settings: none allowed.
    for unit in units().iter().map(|(u, _)| u) {
        assert!(!stderr.contains(unit.as_str()), "{stderr}");
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn compose_file_runs_every_role_on_postgresql_and_redis() {
    let text = common::read(&common::deploy_dir().join("compose.yml"));
    let mut compose: serde_norway::Value =
        serde_norway::from_str(&text).expect("compose.yml parses");
    compose.apply_merge().expect("merge keys resolve");
    let services = compose["services"].as_mapping().expect("services");
    let get = |name: &str| -> &serde_norway::Value {
        services
            .get(name)
            .unwrap_or_else(|| panic!("service {name} missing"))
    };
    assert!(
        get("postgres")["image"]
            .as_str()
            .unwrap()
            .contains("postgres")
    );
    assert!(get("redis")["image"].as_str().unwrap().contains("redis"));
    let command = |name: &str| -> Vec<String> {
        get(name)["command"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name}: command"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(command("cairn")[..1], ["serve"]);
    for role in ROLES {
        // Its own file, from deploy/config (mounted on /etc/cairn).
        let file = format!("{role}.toml");
        assert_eq!(
            command(role),
            [role, "serve", "--config", &format!("/etc/cairn/{file}")],
            "{role}"
        );
        assert!(
            common::deploy_dir().join("config").join(&file).is_file(),
            "deploy/config/{file}"
        );
        let profiles = get(role)["profiles"].as_sequence().unwrap();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].as_str(), Some("split"), "{role}");
    }
    // The merge key (<<: *cairn) gives every Cairn service the database and Redis.
    for name in ROLES.iter().copied().chain(["cairn"]) {
        let env = &get(name)["environment"];
        let db = env["CAIRN_DATABASE_URL"].as_str().unwrap_or_default();
        let redis = env["CAIRN_REDIS_URL"].as_str().unwrap_or_default();
        assert!(
            db.starts_with("postgres://") && db.contains("@postgres:"),
            "{name}: {db}"
        );
        assert!(redis.starts_with("redis://redis:"), "{name}: {redis}");
    }
    // The stores report healthy before Cairn starts.
    for store in ["postgres", "redis"] {
        assert!(get(store)["healthcheck"]["test"].is_sequence(), "{store}");
        assert_eq!(
            get("cairn")["depends_on"][store]["condition"].as_str(),
            Some("service_healthy")
        );
    }
}

#[test]
fn nomad_job_has_a_group_per_role_running_it() {
    let text = common::read(&common::deploy_dir().join("nomad/cairn.nomad.hcl"));
    let body = hcl::parse(&text).expect("the Nomad job parses as HCL");
    let jobs: Vec<&hcl::Block> = body.blocks().filter(|b| b.identifier() == "job").collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].labels()[0].as_str(), "cairn");
    let mut seen = BTreeSet::new();
    for group in jobs[0]
        .body()
        .blocks()
        .filter(|b| b.identifier() == "group")
    {
        let role = group.labels()[0].as_str().to_owned();
        let count = group.body().attributes().find(|a| a.key() == "count");
        assert!(
            matches!(
                count.map(hcl::Attribute::expr),
                Some(hcl::Expression::Number(_))
            ),
            "group {role} has no count"
        );
        let tasks: Vec<&hcl::Block> = group
            .body()
            .blocks()
            .filter(|b| b.identifier() == "task")
            .collect();
        assert_eq!(tasks.len(), 1, "group {role}");
        let config = tasks[0]
            .body()
            .blocks()
            .find(|b| b.identifier() == "config")
            .unwrap_or_else(|| panic!("task {role} has no config"));
        let args = config
            .body()
            .attributes()
            .find(|a| a.key() == "args")
            .unwrap_or_else(|| panic!("task {role} has no args"));
        let hcl::Expression::Array(args) = args.expr() else {
            panic!("task {role}: args is not a list");
        };
        let first: Vec<String> = args
            .iter()
            .take(2)
            .map(|e| match e {
                hcl::Expression::String(s) => s.clone(),
                other => panic!("task {role}: {other:?}"),
            })
            .collect();
        assert_eq!(first, [role.as_str(), "serve"]);
        // Its own configuration file, from its own variable item.
        let own = format!("${{NOMAD_SECRETS_DIR}}/{role}.toml");
        let task = format!("{:?}", tasks[0].body());
        assert!(task.contains(&own), "task {role} does not read {own}");
        assert!(
            task.contains(&format!(".config_{role} ")),
            "task {role} does not render config_{role}"
        );
        // A health check on each group's metrics listener.
        let checked = group
            .body()
            .blocks()
            .filter(|b| b.identifier() == "service")
            .any(|s| s.body().blocks().any(|b| b.identifier() == "check"));
        assert!(checked, "group {role} has no health check");
        seen.insert(role);
    }
    let expected: BTreeSet<String> = ROLES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(seen, expected);
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_in_another() {
    let text = common::read(&common::deploy_dir().join("docker/Dockerfile"));
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"), "{}", stages[0]);
    assert!(
        text.contains("cargo build --release --locked -p cairn"),
        "builds the binary with the lock file"
    );
    assert!(text.contains("COPY --from=build "));
    assert!(text.lines().any(|l| l == "USER cairn"), "runs unprivileged");
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/cairn"]"#));
}
