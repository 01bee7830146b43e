//! SoftHSM2 tokens for tests and local trials: a token directory of its own with a generated
//! `softhsm2.conf`, tokens initialized with `softhsm2-util`. SoftHSM reads `SOFTHSM2_CONF` when
//! the module is initialized, so a process that wants this token directory must start with that
//! variable set: tests run their body in a child process ([`run_in_child`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable SoftHSM2 reads its configuration file from.
pub const CONF_ENV: &str = "SOFTHSM2_CONF";
/// Set in the child process [`run_in_child`] starts.
pub const CHILD_ENV: &str = "CAIRN_SOFTHSM_CHILD";

/// Where Debian and Fedora install the SoftHSM2 module.
const MODULE_PATHS: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

/// The installed SoftHSM2 module, if any.
pub fn module_path() -> Option<PathBuf> {
    MODULE_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A SoftHSM2 token directory and its configuration file.
#[derive(Debug, Clone)]
pub struct SoftHsm {
    conf: PathBuf,
    module: PathBuf,
}

impl SoftHsm {
    /// Creates `dir/tokens` and `dir/softhsm2.conf` pointing at it.
    pub fn create(dir: &Path) -> Result<SoftHsm, String> {
        let module = module_path().ok_or("the SoftHSM2 module is not installed (softhsm2)")?;
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens)
            .map_err(|e| format!("cannot create {}: {e}", tokens.display()))?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        Ok(SoftHsm { conf, module })
    }

    /// The configuration file (the value of `SOFTHSM2_CONF`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The PKCS#11 module.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Initializes a new token labelled `label` with the user PIN `pin`.
    pub fn init_token(&self, label: &str, pin: &str) -> Result<(), String> {
        let out = Command::new("softhsm2-util")
            .env(CONF_ENV, &self.conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", &format!("so-{pin}"), "--pin", pin])
            .output()
            .map_err(|e| format!("cannot run softhsm2-util: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}

/// True in the child process of [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the test `test_name` of the current test binary again in a child process whose
/// `SOFTHSM2_CONF` is `hsm`'s, with `extra_env` added, and fails if it fails. The child sees
/// [`in_child`] true and runs the test body.
pub fn run_in_child(test_name: &str, hsm: &SoftHsm, extra_env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CONF_ENV, hsm.conf())
        .env(CHILD_ENV, "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start the child test: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child test {test_name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "child test {test_name} did not run:\n{stdout}\n{stderr}"
    );
}
