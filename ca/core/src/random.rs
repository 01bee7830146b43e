//! The CA's randomness: serials, account/order/authorization/challenge IDs, nonces and jitter
//! all come from the operating system's generator through aws-lc, by [`fill`].
//!
//! There is no fallback. If the generator fails, the process stops (after saying why on
//! stderr): a CA that went on would issue predictable serials and replayable nonces, which is
//! worse than being down. A panic would not do — it ends only the task that drew the bytes,
//! and the next request would try again — so this aborts the whole process.

use aws_lc_rs::error::Unspecified;

/// Fills `buf` with random bytes from the system generator, or stops the process.
pub fn fill(buf: &mut [u8]) {
    fill_from(buf, aws_lc_rs::rand::fill);
}

/// [`fill`] with the generator given: the failure path is tested with one that fails.
fn fill_from(buf: &mut [u8], generator: impl FnOnce(&mut [u8]) -> Result<(), Unspecified>) {
    if generator(buf).is_err() {
        eprintln!(
            "fatal: the system random number generator failed; Cairn stops rather than issue \
             predictable serials, identifiers or nonces"
        );
        std::process::abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Set in the child process that [`a_failing_generator_aborts_the_process`] starts.
    const CHILD_ENV: &str = "CAIRN_TEST_RANDOM_FAILURE_CHILD";

    #[test]
    fn fill_gives_different_bytes() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, [0u8; 32]);
        assert_ne!(a, b);
    }

    #[test]
    fn a_failing_generator_aborts_the_process() {
        if std::env::var_os(CHILD_ENV).is_some() {
            // In the child: this must not return.
            let mut buf = [0u8; 16];
            fill_from(&mut buf, |_| Err(Unspecified));
            println!("fill_from returned after a generator failure");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "random::tests::a_failing_generator_aborts_the_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the child exited cleanly:\n{stdout}\n{stderr}"
        );
        assert!(!stdout.contains("returned after"), "{stdout}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                out.status.signal(),
                Some(6),
                "not SIGABRT: {:?}",
                out.status
            );
        }
        assert!(
            stderr.contains("random number generator failed"),
            "no reason given:\n{stderr}"
        );
    }
}
