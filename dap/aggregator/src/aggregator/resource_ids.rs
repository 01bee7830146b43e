//! How the aggregator names what it creates: random IDs for jobs and leases, and IDs derived
//! from the request for resources whose creation must be idempotent (DAP-18 §3.2).

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use cairn_dap_messages::TaskId;

/// 16 random bytes: a job ID, a lease token or a batch ID half.
pub(super) fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    // The system RNG does not fail on supported platforms; zeros would still be unique enough
    // per (task, job) because IDs are also checked for conflicts by the database.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
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
}
