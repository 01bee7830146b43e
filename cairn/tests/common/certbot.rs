//! Drives the real certbot (from the virtualenv `testing/test.sh` prepares, `CAIRN_VENV`)
//! against a directory URL, with its own folders, and checks what it saves.

use super::{pem_chain, verify_chain};
use cairn_core::Identifier;
use cairn_x509::CertInfo;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// certbot's folders, the server it talks to and the roots it trusts.
pub struct CertbotEnv {
    pub venv: PathBuf,
    pub base: PathBuf,
    pub directory: String,
    /// The subscriber root: issued certificates chain to it.
    pub root: PathBuf,
    /// The local TLS root: certbot trusts it for the ACME listener.
    pub tls_root: PathBuf,
}

impl CertbotEnv {
    /// `<venv>/bin/certbot`, asserted present.
    pub fn check_installed(venv: &std::path::Path) {
        let exe = venv.join("bin").join("certbot");
        assert!(
            exe.is_file(),
            "{} is missing: run testing/test.sh",
            exe.display()
        );
    }

    /// A file of certbot's live folder for `cert_name`.
    pub fn live(&self, cert_name: &str, file: &str) -> PathBuf {
        self.base.join("config/live").join(cert_name).join(file)
    }

    /// The end of certbot's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.base.join("logs/letsencrypt.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Runs certbot; panics with its output and log when it fails.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.run_unchecked(args);
        assert!(
            out.status.success(),
            "certbot {} failed ({}):\nstdout:\n{}\nstderr:\n{}\nlog:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        out
    }

    /// Runs certbot and returns its output, whatever its status.
    pub fn run_unchecked(&self, args: &[&str]) -> Output {
        let exe = self.venv.join("bin").join("certbot");
        println!("$ certbot {}", args.join(" "));
        let started = Instant::now();
        let out = Command::new(&exe)
            .args(args)
            .arg("--config-dir")
            .arg(self.base.join("config"))
            .arg("--work-dir")
            .arg(self.base.join("work"))
            .arg("--logs-dir")
            .arg(self.base.join("logs"))
            .args(["--server", &self.directory])
            .args(["--non-interactive", "--agree-tos"])
            .env("REQUESTS_CA_BUNDLE", &self.tls_root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        println!(
            "  ({:.1}s, {})",
            started.elapsed().as_secs_f32(),
            out.status
        );
        out
    }

    /// Checks the certificate certbot saved as `name` (its own certificate name): the files,
    /// the chain up to the root, the names. Returns its serial.
    pub fn check_saved_certificate(&self, name: &str) -> Vec<u8> {
        for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
            assert!(self.live(name, file).is_file(), "{} is missing", file);
        }
        let fullchain =
            std::fs::read_to_string(self.live(name, "fullchain.pem")).expect("fullchain.pem");
        verify_chain(&self.root, &fullchain, name);
        let cert =
            pem_chain(&std::fs::read_to_string(self.live(name, "cert.pem")).expect("cert.pem"));
        assert_eq!(cert.len(), 1, "cert.pem holds the leaf only");
        assert_eq!(
            cert[0],
            pem_chain(&fullchain)[0],
            "fullchain.pem starts with cert.pem"
        );
        let chain =
            pem_chain(&std::fs::read_to_string(self.live(name, "chain.pem")).expect("chain.pem"));
        assert!(!chain.is_empty(), "chain.pem holds the intermediate");
        let info = CertInfo::from_der(&cert[0]).expect("certificate parses");
        assert_eq!(info.identifiers, vec![Identifier::dns(name)], "SANs");
        assert!(!info.is_ca);
        info.serial
    }

    /// The leaf certbot saved under `cert_name`, after checking its chain for `name`.
    pub fn saved_leaf(&self, cert_name: &str, name: &str) -> CertInfo {
        let fullchain =
            std::fs::read_to_string(self.live(cert_name, "fullchain.pem")).expect("fullchain.pem");
        verify_chain(&self.root, &fullchain, name);
        CertInfo::from_der(&pem_chain(&fullchain)[0]).expect("certificate parses")
    }
}
