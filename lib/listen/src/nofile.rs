//! The open-file limit: every connection is a file descriptor, and distributions start
//! services with a soft limit (often 1024) far below the hard one. Raising the soft limit to the
//! hard limit at start-up lets the connection caps, not the kernel, decide when to refuse.

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit; returns the limit now in force
/// (`None`: unlimited or unknown). Failing to raise it is logged, not fatal.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::debug!(limit = ?limit.maximum, "raised the open-file limit");
            limit.maximum
        }
        Err(e) => {
            tracing::warn!(error = %e, current = ?limit.current, "cannot raise the open-file limit");
            limit.current
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let after = super::raise_nofile_limit();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, now.maximum);
        assert_eq!(after, now.current);
    }
}
