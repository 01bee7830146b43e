//! Rate limits at the RA's decision points: RFC 8555 `rateLimited` problems with `Retry-After`
//! and a documentation link, failed-validation accounting and pausing.

use crate::Ra;
use cairn_core::{AccountId, Identifier, Problem, ProblemType};
use cairn_ratelimit::{LimitName, RateLimitError, Transaction};

fn is_certificate_limit(t: &Transaction) -> bool {
    matches!(
        t.key().limit(),
        LimitName::CertificatesPerDomain | LimitName::CertificatesPerFqdnSet
    )
}

/// newOrder's transactions: the new-orders bucket is spent; the certificate buckets are only
/// checked (they are spent when a certificate is issued, as at Let's Encrypt, so failed orders
/// don't count as certificates).
pub(crate) fn new_order_transactions(
    account: &AccountId,
    identifiers: &[Identifier],
    replaced: Option<&[Identifier]>,
) -> Vec<Transaction> {
    Transaction::new_order(account, identifiers, replaced)
        .into_iter()
        .map(|t| {
            if is_certificate_limit(&t) {
                t.into_check_only()
            } else {
                t
            }
        })
        .collect()
}

impl Ra {
    /// Spends `txns` if every bucket allows. A store failure is logged and lets the request
    /// through: rate limits protect capacity, not issuance correctness, so an unreachable Redis
    /// must not stop the CA.
    pub(crate) async fn spend_limits(&self, txns: &[Transaction]) -> Result<(), Problem> {
        if txns.is_empty() {
            return Ok(());
        }
        match self.inner.limiter.check_and_spend(self.now(), txns).await {
            Ok(()) => Ok(()),
            Err(e) => limit_outcome(e),
        }
    }

    /// Spends the certificate buckets for an issued certificate. Issuance has happened, so a
    /// bucket that ran dry in the meantime (a race between orders) is only logged.
    pub(crate) async fn spend_certificate_limits(&self, order: &cairn_core::Order) {
        let replaced = self.replaced_identifiers(order).await;
        let txns: Vec<Transaction> =
            Transaction::new_order(&order.account_id, &order.identifiers, replaced.as_deref())
                .into_iter()
                .filter(is_certificate_limit)
                .collect();
        if txns.is_empty() {
            return;
        }
        if let Err(e) = self.inner.limiter.check_and_spend(self.now(), &txns).await {
            tracing::info!(order = %order.id, error = %e, "certificate issued over a rate limit (raced)");
        }
    }

    /// The identifiers of the certificate `order` replaces (ARI), if it names one this CA
    /// still knows: the renewal is exempt from the certificate counts of those.
    async fn replaced_identifiers(&self, order: &cairn_core::Order) -> Option<Vec<Identifier>> {
        let (_, serial) = crate::renewal_info::parse_cert_id(order.replaces.as_deref()?).ok()?;
        match self.inner.sa.get_certificate(&serial).await {
            Ok(cert) if cert.account_id == order.account_id => Some(cert.identifiers),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(order = %order.id, error = %e, "loading the replaced certificate; counting the renewal as a new certificate");
                None
            }
        }
    }

    /// Gives back what [`Ra::spend_limits`] took when the request then failed on our side.
    pub(crate) async fn refund_limits(&self, txns: &[Transaction]) {
        if let Err(e) = self.inner.limiter.refund(self.now(), txns).await {
            tracing::warn!(error = %e, "refunding rate limit tokens failed");
        }
    }

    /// Refuses identifiers the account is paused for.
    pub(crate) async fn check_paused(
        &self,
        account: &AccountId,
        identifiers: &[Identifier],
    ) -> Result<(), Problem> {
        match self.inner.limiter.check_paused(account, identifiers).await {
            Ok(()) => Ok(()),
            Err(e) => limit_outcome(e),
        }
    }

    /// Counts a validation outcome for the failed-validation limits and pausing.
    pub(crate) async fn record_validation(
        &self,
        account: &AccountId,
        id: &Identifier,
        valid: bool,
    ) {
        let limiter = &self.inner.limiter;
        let result = if valid {
            limiter.record_successful_validation(account, id).await
        } else {
            limiter
                .record_failed_validation(self.now(), account, id)
                .await
                .map(|outcome| {
                    if outcome.paused {
                        tracing::warn!(account = %account, identifier = %id, "account paused for identifier after repeated failed validations");
                        metrics::counter!("cairn_accounts_paused_total").increment(1);
                    }
                })
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording a validation for rate limits failed");
        }
    }
}

fn limit_outcome(err: RateLimitError) -> Result<(), Problem> {
    match err {
        RateLimitError::Denied(d) => {
            metrics::counter!("cairn_rate_limited_total", "limit" => d.limit.as_str()).increment(1);
            Err(Problem::new(ProblemType::RateLimited, d.detail.clone())
                .with_retry_after(d.retry_after_secs())
                .with_help_url(d.doc_url.clone()))
        }
        RateLimitError::Paused { identifiers, .. } => {
            let names: Vec<&str> = identifiers.iter().map(|i| i.value.as_str()).collect();
            Err(Problem::unauthorized(format!(
                "this account is paused for {} after too many failed validations; \
                 ask the CA's operator to unpause it (cairn admin unpause)",
                names.join(", ")
            )))
        }
        other => {
            tracing::error!(error = %other, "rate limit store unavailable; allowing the request");
            metrics::counter!("cairn_rate_limit_store_errors_total").increment(1);
            Ok(())
        }
    }
}
