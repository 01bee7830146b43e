//! How the aggregator names what it creates: random IDs for jobs and leases, and IDs derived
//! from the request for resources whose creation must be idempotent (DAP-18 §3.2).

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use cairn_dap_messages::TaskId;

/// 16 random bytes: a job ID, a lease token or a batch ID half.
///
/// Stops the process if the system generator fails. Zeros (or any other stand-in) would give
/// every job the same ID and make lease tokens guessable, so a lease could be taken over; the
/// aggregator must not run on without randomness. A panic would end only the current task,
/// hence the abort.
pub(super) fn random16() -> [u8; 16] {
    random16_from(|b| aws_lc_rs::rand::SystemRandom::new().fill(b))
}

/// [`random16`] with the generator given: the failure path is tested with one that fails.
fn random16_from(
    generator: impl FnOnce(&mut [u8]) -> Result<(), aws_lc_rs::error::Unspecified>,
) -> [u8; 16] {
    let mut b = [0u8; 16];
    if generator(&mut b).is_err() {
        eprintln!(
            "fatal: the system random number generator failed; the DAP aggregator stops rather \
             than hand out predictable job IDs and lease tokens"
        );
        std::process::abort();
    }
    b
}

/// A resource ID derived from the request: identical requests name the same resource, which
/// makes creation idempotent (DAP-18 §3.2).
pub(super) fn content_id(task_id: &TaskId, body: &[u8]) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(task_id.as_bytes());
    ctx.update(body);
    let d = ctx.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_name_the_task_and_the_request() {
        let a = TaskId::from_bytes([1; 32]);
        let b = TaskId::from_bytes([2; 32]);
        assert_eq!(content_id(&a, b"req"), content_id(&a, b"req"));
        assert_ne!(content_id(&a, b"req"), content_id(&a, b"req2"));
        assert_ne!(content_id(&a, b"req"), content_id(&b, b"req"));
        assert_ne!(random16(), random16());
    }

    /// Set in the child process that [`a_failing_generator_aborts_the_process`] starts.
    const CHILD_ENV: &str = "CAIRN_TEST_DAP_RANDOM_FAILURE_CHILD";

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_failing_generator_aborts_the_process() {
        if std::env::var_os(CHILD_ENV).is_some() {
            // In the child: this must not return.
            let ids = random16_from(|_| Err(aws_lc_rs::error::Unspecified));
            println!("random16_from returned {ids:?} after a generator failure");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "aggregator::resource_ids::tests::a_failing_generator_aborts_the_process",
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
        assert!(!stdout.contains("returned"), "{stdout}");
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
