//! A key ceremony against SoftHSM2 in a temporary token directory, run through `cairn ceremony`
//! step files exactly as an operator would: tokens initialized with `softhsm2-util`, the PIN in
//! an environment variable, the module found by `SOFTHSM2_CONF`.

use cairn_hsm::softhsm::{self, SoftHsm};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user PIN of every test token.
pub const PIN: &str = "4711";
/// The variable the step files name for the PIN.
pub const PIN_ENV: &str = "CAIRN_CEREMONY_TEST_PIN";
/// The token holding the root key.
pub const ROOT_TOKEN: &str = "cairn-root";
/// The token holding the issuing intermediates' keys.
pub const ISSUING_TOKEN: &str = "cairn-issuing";
/// The label of the issuing intermediate's key.
pub const INTERMEDIATE_KEY: &str = "int-e1";
/// The ARL's URL, named by the intermediates.
pub const ARL_URL: &str = "http://ca.example/root.crl";

/// A ceremony directory (step files and outputs) with its SoftHSM token directory.
pub struct Ceremony {
    pub dir: tempfile::TempDir,
    pub hsm: SoftHsm,
}

impl Ceremony {
    /// Two tokens (root, issuing), or `None` when SoftHSM2 is not installed outside CI (under CI
    /// its absence fails the test).
    pub fn new() -> Option<Ceremony> {
        cairn_test_services::program("softhsm2-util")?;
        cairn_test_services::program("openssl")?;
        let dir = tempfile::tempdir().unwrap();
        let hsm = SoftHsm::create(&dir.path().join("hsm")).unwrap();
        hsm.init_token(ROOT_TOKEN, PIN).unwrap();
        hsm.init_token(ISSUING_TOKEN, PIN).unwrap();
        Some(Ceremony { dir, hsm })
    }

    /// A file in the ceremony directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[…key]` table body naming `label` on `token`.
    pub fn key(&self, token: &str, label: &str) -> String {
        format!(
            "module = {:?}\ntoken_label = {token:?}\npin_env = {PIN_ENV:?}\nkey_label = {label:?}\n",
            self.hsm.module().display().to_string()
        )
    }

    /// The PKCS#11 key as `cairn serve`'s configuration names it (an inline TOML table).
    pub fn serve_key(&self, token: &str, label: &str) -> String {
        format!(
            "{{ pkcs11 = {{ module = {:?}, token_label = {token:?}, pin_env = {PIN_ENV:?}, key_label = {label:?} }} }}",
            self.hsm.module().display().to_string()
        )
    }

    /// `cairn` with this token directory and the PIN in the environment.
    pub fn cairn(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.env(softhsm::CONF_ENV, self.hsm.conf())
            .env(PIN_ENV, PIN)
            .current_dir(self.dir.path());
        cmd
    }

    /// Writes the step file `name.toml` and runs `cairn ceremony` on it.
    pub fn run(&self, name: &str, step: &str) -> Output {
        let file = self.path(&format!("{name}.toml"));
        std::fs::write(&file, step).unwrap();
        self.cairn().arg("ceremony").arg(&file).output().unwrap()
    }

    /// [`Ceremony::run`], which must succeed; returns what it printed.
    pub fn run_ok(&self, name: &str, step: &str) -> String {
        let out = self.run(name, step);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "step {name} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// [`Ceremony::run`], which must fail with one line on stderr; returns that line.
    pub fn run_err(&self, name: &str, step: &str) -> String {
        let out = self.run(name, step);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "step {name} succeeded:\n{stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "not one line: {stderr}"
        );
        assert!(stderr.starts_with("cairn: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr.trim_end().to_owned()
    }

    /// Runs `openssl` in the ceremony directory.
    pub fn openssl(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// The `generate_key` step for `label` on `token`.
    pub fn generate_key(&self, token: &str, label: &str, id: &str, algorithm: &str) -> String {
        self.run_ok(
            &format!("key-{label}"),
            &format!(
                "[generate_key]\nalgorithm = {algorithm:?}\npublic_key_output = \"{label}.pub.pem\"\n\
                 [generate_key.key]\n{}key_id = {id:?}\n",
                self.key(token, label)
            ),
        )
    }

    /// The root step: `root.pem`, a P-384 root in the root token.
    pub fn root(&self) -> String {
        self.run_ok(
            "root",
            &format!(
                "[root]\nkey_algorithm = \"ecdsa-p384\"\nnot_before = \"{}\"\nnot_after = \"{}\"\n\
                 output = \"root.pem\"\n[root.key]\n{}[root.subject]\ncommon_name = \"Cairn Test Root X1\"\n\
                 organization = \"Cairn Test\"\ncountry = \"DE\"\n",
                years_from_now(-1),
                years_from_now(20),
                self.key(ROOT_TOKEN, "root-x1")
            ),
        )
    }

    /// An intermediate step: `<label>.pem` for the public key `<label>.pub.pem`, issued by the
    /// root.
    pub fn intermediate(&self, label: &str, algorithm: &str, common_name: &str) -> String {
        self.run_ok(
            &format!("int-{label}"),
            &format!(
                "[intermediate]\nnot_before = \"{}\"\nnot_after = \"{}\"\ncrl_url = {ARL_URL:?}\n\
                 output = \"{label}.pem\"\n[intermediate.issuer]\ncertificate = \"root.pem\"\n\
                 [intermediate.issuer.key]\n{}[intermediate.subject_key]\npublic_key = \"{label}.pub.pem\"\n\
                 algorithm = {algorithm:?}\n[intermediate.subject]\ncommon_name = {common_name:?}\n\
                 organization = \"Cairn Test\"\ncountry = \"DE\"\n",
                years_from_now(0),
                years_from_now(5),
                self.key(ROOT_TOKEN, "root-x1")
            ),
        )
    }

    /// The ARL step: `root.crl` revoking the certificates in `revoked` (file names).
    pub fn arl(&self, name: &str, number: u64, revoked: &[&str]) -> String {
        let mut step = format!(
            "[arl]\nnumber = {number}\nthis_update = \"{}\"\nnext_update = \"{}\"\n\
             distribution_point = {ARL_URL:?}\noutput = \"{name}\"\n[arl.issuer]\n\
             certificate = \"root.pem\"\n[arl.issuer.key]\n{}",
            years_from_now(0),
            days_from_now(300),
            self.key(ROOT_TOKEN, "root-x1")
        );
        for cert in revoked {
            step.push_str(&format!(
                "[[arl.revoked]]\ncertificate = {cert:?}\nrevoked_at = \"{}\"\nreason = \"superseded\"\n",
                days_from_now(-1)
            ));
        }
        self.run_ok(&format!("arl-{number}"), &step)
    }

    /// The ceremony `cairn serve` needs: root and issuing keys in the tokens, the root, one
    /// P-256 intermediate (`int-e1.pem`) and an empty ARL (`root.crl`).
    pub fn root_and_intermediate(&self) {
        self.generate_key(ROOT_TOKEN, "root-x1", "01", "ecdsa-p384");
        self.generate_key(ISSUING_TOKEN, INTERMEDIATE_KEY, "02", "ecdsa-p256");
        self.root();
        self.intermediate(INTERMEDIATE_KEY, "ecdsa-p256", "Cairn Test E1");
    }

    /// Every file under the ceremony's data directory `dir` whose contents look like a private
    /// key (a PEM `PRIVATE KEY` block of any kind, or PKCS#8 DER).
    pub fn private_key_files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                let pkcs8 = cairn_x509::SigningKey::from_pkcs8_der(&bytes).is_ok();
                if text.contains("PRIVATE KEY") || pkcs8 {
                    found.push(path);
                }
            }
        }
        found
    }
}

/// The operator's TLS certificate for the ACME listener, from a TLS CA of its own, both outside
/// the data directory: `tls-ca.pem`, `tls.pem`, `tls.key`.
pub fn operator_tls(c: &Ceremony) {
    let run = |args: &[&str]| {
        let out = c.openssl(args);
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tls-ca.key",
        "-out",
        "tls-ca.pem",
        "-subj",
        "/CN=test TLS CA",
        "-days",
        "2",
    ]);
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        c.path("tls.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "tls-ca.pem",
        "-CAkey",
        "tls-ca.key",
        "-days",
        "2",
        "-extfile",
        "tls.ext",
        "-out",
        "tls.pem",
    ]);
}

/// RFC 3339, `years` from now, at midnight UTC (so a step file is the same all day).
pub fn years_from_now(years: i64) -> String {
    days_from_now(years * 365)
}

/// RFC 3339, `days` from now, at midnight UTC.
pub fn days_from_now(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT)
        + time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
