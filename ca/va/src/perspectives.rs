//! Multi-perspective issuance corroboration (Baseline Requirements §3.2.2.9, ballot SC-067).
//!
//! [`MultiPerspectiveVa`] is itself a [`ValidationAuthority`]: it runs each validation (and each
//! CAA check) at the primary perspective and at every remote perspective at once, and succeeds
//! only when the primary succeeds and enough remote perspectives corroborate it:
//!
//! | remote perspectives | may fail to corroborate |
//! |---------------------|-------------------------|
//! | 2–5                 | 1                       |
//! | 6 or more           | 2                       |
//!
//! and the corroborating remote perspectives lie in at least two different Regional Internet
//! Registries. A remote perspective that cannot be reached counts as a failure. Once quorum is
//! out of reach the validation fails at once, without waiting for the slowest perspective. The
//! problem document names the perspectives that did not corroborate and the first one's
//! client-facing detail; transport detail stays in the log.
//!
//! Remote perspectives receive the same request as the primary, CAA check included, so CAA is
//! corroborated too: a CAA record forbidding issuance that only one remote perspective sees
//! makes that perspective fail, which the quorum then tolerates or not as the table says.

use cairn_api::va::{CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest};
use cairn_core::{Identifier, Problem};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::task::JoinSet;

/// One remote network perspective.
#[derive(Clone)]
pub struct RemotePerspective {
    /// Its name, as problem documents and logs show it (`us-east`, `eu-central`).
    pub name: String,
    /// The Regional Internet Registry its network lies in (`ARIN`, `RIPE`, `APNIC`, `LACNIC`,
    /// `AFRINIC`).
    pub rir: String,
    /// The VA that looks from there.
    pub va: Arc<dyn ValidationAuthority>,
}

impl std::fmt::Debug for RemotePerspective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePerspective")
            .field("name", &self.name)
            .field("rir", &self.rir)
            .finish_non_exhaustive()
    }
}

/// A set of remote perspectives that cannot meet the Baseline Requirements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PerspectiveConfigError {
    /// Fewer than two remote perspectives (the table starts at two).
    #[error("multi-perspective corroboration needs at least 2 remote perspectives, got {0}")]
    TooFew(usize),
    /// All remote perspectives lie in one RIR, so no corroborating set can span two.
    #[error("remote perspectives must span at least 2 RIRs, all are in {0}")]
    OneRir(String),
    /// Two perspectives share a name.
    #[error("remote perspective name {0:?} is used twice")]
    DuplicateName(String),
}

/// How many remote perspectives may fail to corroborate, per the BR §3.2.2.9 table.
pub fn allowed_failures(remotes: usize) -> usize {
    if remotes >= 6 { 2 } else { 1 }
}

/// The primary perspective plus remote ones, corroborated as the BR require.
pub struct MultiPerspectiveVa {
    primary: Arc<dyn ValidationAuthority>,
    remotes: Vec<RemotePerspective>,
}

impl std::fmt::Debug for MultiPerspectiveVa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiPerspectiveVa")
            .field("remotes", &self.remotes)
            .finish_non_exhaustive()
    }
}

/// What one remote perspective said.
struct Verdict {
    index: usize,
    problem: Option<Problem>,
}

impl MultiPerspectiveVa {
    /// Corroborates `primary` with `remotes`; refuses a set that could never satisfy the BR.
    pub fn new(
        primary: Arc<dyn ValidationAuthority>,
        remotes: Vec<RemotePerspective>,
    ) -> Result<Self, PerspectiveConfigError> {
        if remotes.len() < 2 {
            return Err(PerspectiveConfigError::TooFew(remotes.len()));
        }
        let mut names = BTreeSet::new();
        for r in &remotes {
            if !names.insert(r.name.as_str()) {
                return Err(PerspectiveConfigError::DuplicateName(r.name.clone()));
            }
        }
        let rirs: BTreeSet<String> = remotes.iter().map(|r| r.rir.to_ascii_uppercase()).collect();
        if rirs.len() < 2 {
            return Err(PerspectiveConfigError::OneRir(
                rirs.into_iter().next().unwrap_or_default(),
            ));
        }
        Ok(Self { primary, remotes })
    }

    /// The remote perspectives.
    pub fn remotes(&self) -> &[RemotePerspective] {
        &self.remotes
    }

    /// Waits for remote verdicts until quorum is met (`None`) or out of reach (the problem).
    async fn corroborate(&self, mut verdicts: JoinSet<Verdict>) -> Option<Problem> {
        let total = self.remotes.len();
        let allowed = allowed_failures(total);
        let mut failed: Vec<(usize, Problem)> = Vec::new();
        let mut agreed: Vec<usize> = Vec::new();
        while let Some(joined) = verdicts.join_next().await {
            let verdict = match joined {
                Ok(v) => v,
                // A perspective's task panicked: it did not corroborate. Which one is unknown,
                // so it is named by elimination below.
                Err(e) => {
                    tracing::error!(error = %e, "remote perspective task failed");
                    continue;
                }
            };
            match verdict.problem {
                None => agreed.push(verdict.index),
                Some(p) => {
                    let r = &self.remotes[verdict.index];
                    tracing::info!(perspective = %r.name, rir = %r.rir, problem = %p.detail,
                        "remote perspective did not corroborate");
                    failed.push((verdict.index, p));
                }
            }
            let rirs: BTreeSet<String> = agreed
                .iter()
                .map(|&i| self.remotes[i].rir.to_ascii_uppercase())
                .collect();
            let quorum = total - allowed;
            if agreed.len() >= quorum && rirs.len() >= 2 {
                verdicts.abort_all();
                metrics::counter!("cairn_va_mpic_total", "result" => "corroborated").increment(1);
                return None;
            }
            // Out of reach: too many failures, or not enough perspectives left to finish.
            let pending = total - agreed.len() - failed.len();
            if failed.len() > allowed || agreed.len() + pending < quorum {
                verdicts.abort_all();
                break;
            }
        }
        metrics::counter!("cairn_va_mpic_total", "result" => "not_corroborated").increment(1);
        let mut names: Vec<&str> = failed
            .iter()
            .map(|(i, _)| self.remotes[*i].name.as_str())
            .collect();
        names.sort_unstable();
        let first = failed.into_iter().next().map(|(_, p)| p);
        let summary = format!(
            "validation was not corroborated by enough remote network perspectives \
             (needed {} of {total} spanning 2 RIRs; not corroborated by: {})",
            total - allowed,
            if names.is_empty() {
                "none; too few RIRs agreed".to_owned()
            } else {
                names.join(", ")
            }
        );
        Some(match first {
            Some(p) => {
                let detail = format!("{summary}: {}", p.detail);
                Problem { detail, ..p }
            }
            None => Problem::new(cairn_core::ProblemType::Unauthorized, summary),
        })
    }
}

#[async_trait::async_trait]
impl ValidationAuthority for MultiPerspectiveVa {
    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome {
        let mut verdicts = JoinSet::new();
        for (index, r) in self.remotes.iter().enumerate() {
            let va = r.va.clone();
            let req = req.clone();
            verdicts.spawn(async move {
                Verdict {
                    index,
                    problem: va.validate(req).await.error,
                }
            });
        }
        let primary = self.primary.validate(req).await;
        if primary.error.is_some() {
            verdicts.abort_all();
            return primary;
        }
        match self.corroborate(verdicts).await {
            None => primary,
            Some(problem) => ValidationOutcome {
                records: primary.records,
                error: Some(problem),
            },
        }
    }

    async fn check_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem> {
        let mut verdicts = JoinSet::new();
        for (index, r) in self.remotes.iter().enumerate() {
            let va = r.va.clone();
            let (identifier, check) = (identifier.clone(), check.clone());
            verdicts.spawn(async move {
                Verdict {
                    index,
                    problem: va.check_caa(&identifier, &check).await.err(),
                }
            });
        }
        if let Err(p) = self.primary.check_caa(identifier, check).await {
            verdicts.abort_all();
            return Err(p);
        }
        match self.corroborate(verdicts).await {
            None => Ok(()),
            Some(p) => Err(p),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cairn_core::{ChallengeType, ProblemType};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A perspective that succeeds or fails after a delay, and counts its calls.
    struct Fixed {
        ok: bool,
        delay: Duration,
        calls: AtomicUsize,
    }

    fn fixed(ok: bool, delay_ms: u64) -> Arc<Fixed> {
        Arc::new(Fixed {
            ok,
            delay: Duration::from_millis(delay_ms),
            calls: AtomicUsize::new(0),
        })
    }

    #[async_trait::async_trait]
    impl ValidationAuthority for Fixed {
        async fn validate(&self, _req: ValidationRequest) -> ValidationOutcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            ValidationOutcome {
                records: Vec::new(),
                error: (!self.ok).then(|| Problem::unauthorized("wrong key authorization")),
            }
        }
        async fn check_caa(&self, _: &Identifier, _: &CaaCheck) -> Result<(), Problem> {
            tokio::time::sleep(self.delay).await;
            if self.ok {
                Ok(())
            } else {
                Err(Problem::new(
                    ProblemType::Caa,
                    "CAA record forbids issuance",
                ))
            }
        }
    }

    fn remote(name: &str, rir: &str, va: Arc<Fixed>) -> RemotePerspective {
        RemotePerspective {
            name: name.into(),
            rir: rir.into(),
            va,
        }
    }

    fn req() -> ValidationRequest {
        ValidationRequest {
            identifier: Identifier::dns("example.test"),
            challenge: ChallengeType::Http01,
            token: "t".into(),
            key_authorization: "t.k".into(),
            caa: None,
        }
    }

    fn caa() -> CaaCheck {
        CaaCheck {
            wildcard: false,
            ca_identities: vec!["cairn.test".into()],
            account: None,
            method: None,
        }
    }

    fn mpic(oks: &[(&str, bool)]) -> MultiPerspectiveVa {
        let remotes = oks
            .iter()
            .enumerate()
            .map(|(i, (rir, ok))| remote(&format!("p{i}"), rir, fixed(*ok, 5)))
            .collect();
        MultiPerspectiveVa::new(fixed(true, 0), remotes).unwrap()
    }

    #[test]
    fn the_br_table() {
        assert_eq!(allowed_failures(2), 1);
        assert_eq!(allowed_failures(5), 1);
        assert_eq!(allowed_failures(6), 2);
        assert_eq!(allowed_failures(12), 2);
    }

    #[test]
    fn sets_that_cannot_meet_the_br_are_refused() {
        let one =
            MultiPerspectiveVa::new(fixed(true, 0), vec![remote("a", "ARIN", fixed(true, 0))]);
        assert_eq!(one.unwrap_err(), PerspectiveConfigError::TooFew(1));
        let same_rir = MultiPerspectiveVa::new(
            fixed(true, 0),
            vec![
                remote("a", "RIPE", fixed(true, 0)),
                remote("b", "ripe", fixed(true, 0)),
            ],
        );
        assert_eq!(
            same_rir.unwrap_err(),
            PerspectiveConfigError::OneRir("RIPE".into())
        );
        let dup = MultiPerspectiveVa::new(
            fixed(true, 0),
            vec![
                remote("a", "RIPE", fixed(true, 0)),
                remote("a", "ARIN", fixed(true, 0)),
            ],
        );
        assert_eq!(
            dup.unwrap_err(),
            PerspectiveConfigError::DuplicateName("a".into())
        );
    }

    #[tokio::test]
    async fn all_agree_and_one_of_three_disagreeing_still_corroborate() {
        let all = mpic(&[("ARIN", true), ("RIPE", true), ("APNIC", true)]);
        assert_eq!(all.validate(req()).await.error, None);
        let one_off = mpic(&[("ARIN", true), ("RIPE", false), ("APNIC", true)]);
        assert_eq!(one_off.validate(req()).await.error, None);
    }

    #[tokio::test]
    async fn two_of_three_disagreeing_fail_and_name_them() {
        let va = mpic(&[("ARIN", false), ("RIPE", true), ("APNIC", false)]);
        let p = va.validate(req()).await.error.unwrap();
        assert_eq!(p.typ, ProblemType::Unauthorized);
        assert!(p.detail.contains("p0, p2"), "{}", p.detail);
        assert!(p.detail.contains("wrong key authorization"), "{}", p.detail);
    }

    #[tokio::test]
    async fn quorum_must_span_two_rirs() {
        // Two agree, but both in ARIN; the one in RIPE fails: 2 of 3 is enough by count only.
        let va = mpic(&[("ARIN", true), ("ARIN", true), ("RIPE", false)]);
        assert!(va.validate(req()).await.error.is_some());
    }

    #[tokio::test]
    async fn six_perspectives_tolerate_two_failures_not_three() {
        let two = mpic(&[
            ("ARIN", false),
            ("RIPE", false),
            ("APNIC", true),
            ("ARIN", true),
            ("RIPE", true),
            ("LACNIC", true),
        ]);
        assert_eq!(two.validate(req()).await.error, None);
        let three = mpic(&[
            ("ARIN", false),
            ("RIPE", false),
            ("APNIC", false),
            ("ARIN", true),
            ("RIPE", true),
            ("LACNIC", true),
        ]);
        assert!(three.validate(req()).await.error.is_some());
    }

    #[tokio::test]
    async fn primary_failure_is_final_and_remote_caa_is_corroborated() {
        let remotes = vec![
            remote("a", "ARIN", fixed(true, 0)),
            remote("b", "RIPE", fixed(true, 0)),
        ];
        let va = MultiPerspectiveVa::new(fixed(false, 0), remotes).unwrap();
        let p = va.validate(req()).await.error.unwrap();
        assert_eq!(p.detail, "wrong key authorization");

        // CAA forbidding issuance seen from one of three remotes: tolerated; from two: refused.
        let one = mpic(&[("ARIN", false), ("RIPE", true), ("APNIC", true)]);
        assert_eq!(
            one.check_caa(&Identifier::dns("example.test"), &caa())
                .await,
            Ok(())
        );
        let two = mpic(&[("ARIN", false), ("RIPE", false), ("APNIC", true)]);
        let p = two
            .check_caa(&Identifier::dns("example.test"), &caa())
            .await
            .unwrap_err();
        assert_eq!(p.typ, ProblemType::Caa);
    }

    #[tokio::test]
    async fn fails_early_once_quorum_is_out_of_reach() {
        let slow = fixed(true, 60_000);
        let remotes = vec![
            remote("fast-a", "ARIN", fixed(false, 1)),
            remote("fast-b", "RIPE", fixed(false, 1)),
            remote("slow", "APNIC", slow.clone()),
        ];
        let va = MultiPerspectiveVa::new(fixed(true, 0), remotes).unwrap();
        let started = std::time::Instant::now();
        assert!(va.validate(req()).await.error.is_some());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the slow perspective"
        );
        assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
    }
}
