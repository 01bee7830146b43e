//! Finalize (RFC 8555 §7.4): CSR checks, the ready → processing compare-and-set, issuance in the
//! background with a bounded wait, and resumption of issuance interrupted by a crash.
//!
//! Crash safety: the order turns `processing` together with its stored CSR; the serial is
//! reserved before signing; the certificate and the order's move to `valid` are one transaction.
//! So a crash leaves either a `processing` order with its CSR (resumed at start-up) or a `valid`
//! order with its certificate, never a `valid` order without one. With CT, the precertificate
//! is stored before any log sees it (so its serial is known to OCSP and CRLs and revocable even
//! if nothing else is), a resumed order reuses it and its serial, and the final certificate goes
//! to the logs only after it is stored.
//!
//! Several instances may share one database: the instance that moves an order to `processing`
//! holds it under a lease ([`RaConfig::order_lease`](crate::RaConfig::order_lease)), renews it
//! while it issues, and checks it still holds it (renewing by compare-and-swap on its own name)
//! right before each signature, unless it took or renewed the lease less than a third of its
//! length before (then no one else can hold it yet). Resumption takes only orders whose lease ended, each claimed by
//! compare-and-swap, so a live instance's order is never issued twice; an instance that finds
//! its lease taken over stops without signing or failing the order.

use crate::{Ra, internal, sa_problem};
use cairn_api::{CtSubmitter, IssueRequest, IssuedCertificate, OrderView, SaError};
use cairn_core::{
    Account, Certificate, Identifier, IdentifierType, Order, OrderId, OrderStatus, Problem,
    ProblemType, Serial,
};
use std::time::Duration as StdDuration;
use time::OffsetDateTime;

/// How issuance ended.
#[derive(Debug, Clone)]
pub enum IssuanceResult {
    /// The certificate is stored and the order valid.
    Issued(Serial),
    /// Issuance failed; the order is invalid with this problem.
    Failed(Problem),
    /// This instance's lease on the order ended and another instance claimed it: this one
    /// stopped without signing further or changing the order; the other finishes it.
    LeaseLost,
}

/// Why `try_issue` stopped.
enum Stop {
    /// Issuance failed: the order becomes invalid with this problem.
    Failed(Problem),
    /// Another instance holds the order now: leave it alone.
    LeaseLost,
}

impl From<Problem> for Stop {
    fn from(p: Problem) -> Self {
        Stop::Failed(p)
    }
}

/// Renews the lease on an order in the background while it lives, every third of the lease.
struct LeaseRenewer(tokio::task::JoinHandle<()>);

impl Drop for LeaseRenewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Ra {
    /// Finalizes a ready order with a CSR (DER). Waits up to the configured time for issuance;
    /// the returned view is `valid` if it finished, else `processing`.
    pub async fn finalize(
        &self,
        account: &Account,
        order_id: &OrderId,
        csr_der: &[u8],
    ) -> Result<OrderView, Problem> {
        // The order and its authorizations are read once here: the status check and the CAA
        // recheck both use them.
        let (order, authzs) = self
            .inner
            .sa
            .get_order_with_authzs(order_id)
            .await
            .map_err(|e| sa_problem(e, "order"))?;
        if order.account_id != account.id {
            return Err(Problem::not_found("order not found"));
        }
        let status = cairn_core::order_status(&order, &authzs, self.now());
        if status != OrderStatus::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!(
                    "order is {}, not ready: finalize needs every authorization valid",
                    status_name(status)
                ),
            ));
        }
        let csr = cairn_x509::parse_csr(csr_der)
            .map_err(|e| Problem::new(ProblemType::BadCsr, format!("invalid CSR: {e}")))?;
        let csr_ids = csr.identifiers();
        if csr_ids != order.identifiers {
            return Err(Problem::new(
                ProblemType::BadCsr,
                format!(
                    "the CSR's identifiers ({}) differ from the order's ({})",
                    list(&csr_ids),
                    list(&order.identifiers)
                ),
            ));
        }
        if cairn_x509::spki_jwk_thumbprint(&csr.spki_der).as_deref()
            == Some(account.key_thumbprint.as_str())
        {
            return Err(Problem::new(
                ProblemType::BadCsr,
                "the certificate key must differ from the account key",
            ));
        }
        self.check_key_not_blocked(&csr.spki_der).await?;
        self.check_csr_key_not_debian_weak(&csr.spki_der)?;
        self.check_authz_reuse_window(&order, &authzs)?;
        self.recheck_caa(account, &authzs).await?;
        // The ready → processing compare-and-set and the issuance run in one spawned task, not in
        // this future: when a client gives up on the request, hyper drops this future at
        // whatever `.await` it is in, and a CAS that had already committed would otherwise leave
        // the order `processing` with nothing issuing for it until the next start-up. A spawned
        // task is not cancelled with the request.
        let ra = self.clone();
        let id = order_id.clone();
        let order_after = order.clone();
        let mut order = order;
        let csr = csr_der.to_vec();
        // The serial is reserved in the same write that moves the order to processing.
        let serial = Serial::random();
        let now = self.now();
        let lease = self.lease(self.inner.config.order_lease);
        let (moved_tx, moved_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let moved = ra
                .inner
                .sa
                .set_order_processing(&id, &csr, &serial, now, &lease)
                .await;
            let go = matches!(moved, Ok(true));
            let _ = moved_tx.send(moved);
            if go {
                order.status = OrderStatus::Processing;
                order.csr_der = Some(csr);
                let result = ra.issue_for_order(order, Some(serial), lease.until).await;
                let _ = tx.send(result);
            }
        });
        let moved = moved_rx
            .await
            .map_err(|e| internal(&e, "moving order to processing"))?
            .map_err(|e| internal(&e, "moving order to processing"))?;
        if !moved {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                "order is already being finalized",
            ));
        }
        let wait = StdDuration::try_from(self.inner.config.finalize_wait).unwrap_or_default();
        match tokio::time::timeout(wait, rx).await {
            // Stored in one write with the move to valid: the order is what the view says.
            Ok(Ok(IssuanceResult::Issued(serial))) => {
                let mut order = order_after;
                order.status = OrderStatus::Valid;
                order.certificate_serial = Some(serial);
                Ok(OrderView {
                    status: OrderStatus::Valid,
                    order,
                })
            }
            _ => self.get_order(account, order_id).await,
        }
    }

    /// Rechecks CAA for every authorization of the order validated longer ago than
    /// `caa_recheck_after` (CAA may have changed since; Boulder does the same).
    async fn recheck_caa(
        &self,
        account: &Account,
        authzs: &[cairn_core::Authorization],
    ) -> Result<(), Problem> {
        let cutoff = self.now() - self.inner.config.caa_recheck_after;
        let mut subs = Vec::new();
        for authz in authzs {
            if authz.validated_at().is_some_and(|t| t >= cutoff) {
                continue;
            }
            let method = authz
                .challenges
                .iter()
                .find(|c| c.status == cairn_core::ChallengeStatus::Valid)
                .map(|c| c.typ);
            let check = self.caa_check(account, authz.wildcard, method);
            if let Err(p) = self.inner.va.check_caa(&authz.identifier, &check).await {
                subs.push(cairn_core::Subproblem {
                    typ: p.typ,
                    detail: p.detail,
                    identifier: authz.identifier.clone(),
                });
            }
        }
        if subs.is_empty() {
            Ok(())
        } else {
            Err(Problem::compound(
                "CAA rechecked at finalize forbids issuance",
                subs,
            ))
        }
    }

    /// Issues the certificate for a `processing` order from its stored CSR, recording the
    /// outcome. Never returns early without moving the order to `valid` or `invalid`, unless the
    /// database itself fails (then the order stays `processing` and is resumed at start-up).
    /// `reserved` is a serial already reserved for the order (by the move to processing); without
    /// one (resuming after a crash) a fresh serial is reserved first.
    ///
    /// The caller holds the order's lease until `lease_until` (it moved the order to
    /// processing, or claimed it); it is renewed in the background until this returns.
    pub async fn issue_for_order(
        &self,
        order: Order,
        reserved: Option<Serial>,
        lease_until: OffsetDateTime,
    ) -> IssuanceResult {
        let started = std::time::Instant::now();
        let _renewer = self.renew_lease_while_issuing(&order.id);
        let mut held = lease_until;
        match self.try_issue(&order, reserved, &mut held).await {
            Ok(serial) => {
                self.record_replacement(&order).await;
                self.spend_certificate_limits(&order).await;
                metrics::counter!("cairn_certificates_issued_total").increment(1);
                metrics::histogram!("cairn_issuance_seconds")
                    .record(started.elapsed().as_secs_f64());
                IssuanceResult::Issued(serial)
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(order = %order.id, "stopped issuing: the order's lease ended and another instance took it over");
                IssuanceResult::LeaseLost
            }
            Err(Stop::Failed(problem)) => {
                metrics::counter!("cairn_issuance_failures_total").increment(1);
                // Only while this instance still holds the lease: one that lost it must not fail
                // an order another instance is issuing.
                let owner = self.inner.instance.as_str();
                match self
                    .inner
                    .sa
                    .fail_order(&order.id, Some(owner), &problem)
                    .await
                {
                    Ok(()) => {}
                    Err(SaError::Conflict(_)) => {
                        tracing::warn!(order = %order.id, "not failing the order: its lease is another instance's now");
                        return IssuanceResult::LeaseLost;
                    }
                    Err(e) => {
                        tracing::error!(order = %order.id, error = %e, "recording failed issuance")
                    }
                }
                IssuanceResult::Failed(problem)
            }
        }
    }

    /// Renews the order's lease every third of its length until the returned guard drops.
    fn renew_lease_while_issuing(&self, id: &OrderId) -> LeaseRenewer {
        let ra = self.clone();
        let id = id.clone();
        let every = StdDuration::try_from(self.inner.config.order_lease / 3)
            .unwrap_or(StdDuration::from_secs(1))
            .max(StdDuration::from_millis(100));
        LeaseRenewer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match ra.hold_order(&id).await {
                    Ok(_) => {}
                    Err(Stop::LeaseLost) => return,
                    // A failed renewal is retried at the next tick; the check before each
                    // signature decides.
                    Err(Stop::Failed(_)) => {}
                }
            }
        }))
    }

    /// Renews this instance's lease on a `processing` order: `LeaseLost` if another instance
    /// holds it now.
    async fn hold_order(&self, id: &OrderId) -> Result<OffsetDateTime, Stop> {
        let lease = self.lease(self.inner.config.order_lease);
        let held = self
            .inner
            .sa
            .renew_order_lease(id, &lease)
            .await
            .map_err(|e| internal(&e, "renewing the order's lease"))?;
        if held {
            Ok(lease.until)
        } else {
            Err(Stop::LeaseLost)
        }
    }

    /// Makes sure this instance still holds the order before a signature. A lease this instance
    /// took or renewed less than a third of its length ago (the background renewal's period) is
    /// held: no other instance may claim it before it ends, so it is not renewed again (one
    /// storage write fewer per certificate). An older one is renewed, which also tells whether
    /// another instance took the order over. `held` is when the lease ends, as last taken.
    async fn hold_order_before_signing(
        &self,
        id: &OrderId,
        held: &mut OffsetDateTime,
    ) -> Result<(), Stop> {
        let lease = self.inner.config.order_lease;
        if *held - self.now() > lease - lease / 3 {
            return Ok(());
        }
        *held = self.hold_order(id).await?;
        Ok(())
    }

    async fn try_issue(
        &self,
        order: &Order,
        reserved: Option<Serial>,
        held: &mut OffsetDateTime,
    ) -> Result<Serial, Stop> {
        let csr_der = order
            .csr_der
            .as_deref()
            .ok_or_else(|| internal(&"order has no stored CSR", "issuing"))?;
        let csr = cairn_x509::parse_csr(csr_der)
            .map_err(|e| Problem::new(ProblemType::BadCsr, format!("invalid CSR: {e}")))?;
        let cfg = &self.inner.config;
        let (_, profile) = cfg.profile(order.profile.as_deref())?;
        let common_name = if profile.include_common_name {
            common_name_for(csr.common_name.as_deref(), &order.identifiers)
        } else {
            None
        };
        // Resuming after a crash: a stored precertificate may have reached CT logs, so its serial
        // and validity are reused and the final certificate is signed for it, never a second
        // precertificate under a new serial.
        let stored_precert = match (&self.inner.ct, &reserved) {
            (Some(_), None) => self
                .inner
                .sa
                .get_order_precertificate(&order.id)
                .await
                .map_err(|e| internal(&e, "looking up a stored precertificate"))?,
            _ => None,
        };
        let now = self.now();
        let (serial, not_before, not_after) = match (&stored_precert, reserved) {
            (Some(pre), _) => (pre.serial.clone(), pre.not_before, pre.not_after),
            (None, reserved) => {
                let not_before = now - cfg.backdate;
                let not_after = not_before + profile.validity - time::Duration::seconds(1);
                let serial = match reserved {
                    Some(serial) => serial,
                    // Without a stored precertificate, the serial reserved before the crash
                    // was seen by no one (a precertificate is stored before CT sees it), but it
                    // may be in a signed, discarded precertificate: a fresh serial is reserved.
                    None => {
                        let serial = Serial::random();
                        self.inner
                            .sa
                            .reserve_serial(&serial, &order.account_id, &order.id, now)
                            .await
                            .map_err(|e| internal(&e, "reserving serial"))?;
                        serial
                    }
                };
                (serial, not_before, not_after)
            }
        };
        let req = IssueRequest {
            serial: serial.clone(),
            spki_der: csr.spki_der.clone(),
            identifiers: order.identifiers.clone(),
            common_name,
            not_before,
            not_after,
            profile_validity: profile.validity,
            usage: profile.usage(),
        };
        let spki_sha256 = hex_sha256(&csr.spki_der);
        let record = |issued: IssuedCertificate| Certificate {
            serial: serial.clone(),
            account_id: order.account_id.clone(),
            order_id: order.id.clone(),
            der: issued.der,
            issuer_id: issued.issuer_id,
            crl_shard: issued.crl_shard,
            identifiers: order.identifiers.clone(),
            not_before,
            not_after,
            spki_sha256: spki_sha256.clone(),
            revocation: None,
            renew_by: None,
            replaced_by: None,
        };
        let (issued, final_chain) = match &self.inner.ct {
            None => {
                self.hold_order_before_signing(&order.id, held).await?;
                (
                    self.inner
                        .issuer
                        .issue(req)
                        .await
                        .map_err(|e| internal(&e, "signing certificate"))?,
                    None,
                )
            }
            Some(ct) => {
                self.issue_with_scts(&order.id, held, ct.as_ref(), req, stored_precert, &record)
                    .await?
            }
        };
        let cert = record(issued);
        self.inner
            .sa
            .finalize_order(&cert)
            .await
            .map_err(|e| internal(&e, "storing certificate"))?;
        // Only a stored certificate goes to the logs.
        if let (Some(ct), Some(chain)) = (self.inner.ct.clone(), final_chain) {
            tokio::spawn(async move { ct.submit_final(chain).await });
        }
        Ok(serial)
    }

    /// Boulder's order with Certificate Transparency: sign the precertificate (linted, critical
    /// poison), store it, submit it to the logs, require SCTs from enough distinct operators,
    /// then sign (linted) the final certificate with the SCT list in place of the poison. Returns
    /// it with the chain to submit to the logs once it is stored. Without enough SCTs nothing but
    /// the precertificate is signed (and stored: its serial stays known to OCSP and CRLs and
    /// revocable) and the order fails with a retryable problem. `stored` is a precertificate
    /// stored before a crash, signed for `req`: it is submitted again instead of a new one.
    async fn issue_with_scts(
        &self,
        order_id: &OrderId,
        held: &mut OffsetDateTime,
        ct: &dyn CtSubmitter,
        req: IssueRequest,
        stored: Option<Certificate>,
        record: &(dyn Fn(IssuedCertificate) -> Certificate + Sync),
    ) -> Result<(IssuedCertificate, Option<Vec<Vec<u8>>>), Stop> {
        let issuer = &self.inner.issuer;
        let (precert_der, issuer_id) = match stored {
            Some(pre) => (pre.der, pre.issuer_id),
            None => {
                self.hold_order_before_signing(order_id, held).await?;
                let precert = issuer
                    .issue_precertificate(req.clone())
                    .await
                    .map_err(|e| internal(&e, "signing precertificate"))?;
                let issuer_id = precert.issuer_id.clone();
                let der = precert.der.clone();
                // Stored before any log sees it.
                self.inner
                    .sa
                    .add_precertificate(&record(precert))
                    .await
                    .map_err(|e| internal(&e, "storing the precertificate"))?;
                (der, issuer_id)
            }
        };
        let issuer_chain = issuer
            .chains(&issuer_id)
            .first()
            .map(|pem| cairn_x509::pem_certificates(pem))
            .transpose()
            .map_err(|e| internal(&e, "decoding the issuer chain"))?
            .unwrap_or_default();
        if issuer_chain.is_empty() {
            return Err(internal(&"no issuer chain", "submitting to CT logs").into());
        }
        let mut chain = Vec::with_capacity(issuer_chain.len() + 1);
        chain.push(precert_der.clone());
        chain.extend(issuer_chain.iter().cloned());
        let scts = ct.get_scts(&chain).await.map_err(|e| {
            tracing::warn!(serial = %req.serial, error = %e, "no certificate issued: not enough SCTs");
            Problem::new(
                ProblemType::RateLimited,
                "the CA could not get enough signed certificate timestamps from Certificate \
                 Transparency logs in time, so no certificate was issued; retry later with a \
                 new order (validated authorizations are reused)",
            )
        })?;
        let serial = req.serial.clone();
        // Getting SCTs may take long: another instance may have taken the order over since.
        self.hold_order_before_signing(order_id, held).await?;
        let issued = issuer
            .issue_final(req, &precert_der, &scts.encoded)
            .await
            .map_err(|e| internal(&e, "signing the certificate for a precertificate"))?;
        tracing::info!(serial = %serial, scts = scts.count, "embedded SCTs");
        let mut final_chain = Vec::with_capacity(issuer_chain.len() + 1);
        final_chain.push(issued.der.clone());
        final_chain.extend(issuer_chain);
        Ok((issued, Some(final_chain)))
    }

    /// Resumes issuance for orders left `processing` past their lease (by a crash, or by an
    /// instance that stopped renewing), each claimed by compare-and-swap first, so an order
    /// another live instance holds is never taken. Returns how many it resumed.
    pub async fn resume_interrupted_issuance(&self) -> Result<usize, Problem> {
        let now = self.now();
        let orders = self
            .inner
            .sa
            .get_stale_processing_orders(now)
            .await
            .map_err(|e| internal(&e, "listing processing orders"))?;
        let mut resumed = 0;
        for order in orders {
            let lease = self.lease(self.inner.config.order_lease);
            let claimed = self
                .inner
                .sa
                .claim_processing_order(&order.id, &lease, now)
                .await
                .map_err(|e| internal(&e, "claiming a processing order"))?;
            if !claimed {
                // Another instance was first.
                continue;
            }
            resumed += 1;
            tracing::info!(order = %order.id, "resuming issuance left processing past its lease");
            // The stored precertificate's serial if there is one, else a new serial.
            let _ = self.issue_for_order(order, None, lease.until).await;
        }
        Ok(resumed)
    }

    /// A stored certificate by serial.
    pub async fn get_certificate(&self, serial: &Serial) -> Result<Certificate, Problem> {
        self.inner
            .sa
            .get_certificate(serial)
            .await
            .map_err(|e| sa_problem(e, "certificate"))
    }
}

/// The subject CN: the CSR's if it is short enough, else the first DNS name that fits in 64
/// characters (RFC 5280 ub-common-name), else none.
fn common_name_for(csr_cn: Option<&str>, ids: &[Identifier]) -> Option<String> {
    if let Some(cn) = csr_cn
        && cn.len() <= 64
    {
        return Some(cn.to_ascii_lowercase());
    }
    ids.iter()
        .find(|i| i.typ == IdentifierType::Dns && i.value.len() <= 64)
        .map(|i| i.value.clone())
}

impl Ra {
    /// Refuses a certificate key that was blocked (reported compromised) with `badPublicKey`.
    async fn check_key_not_blocked(&self, spki_der: &[u8]) -> Result<(), Problem> {
        let blocked = self
            .inner
            .sa
            .is_key_blocked(&hex_sha256(spki_der))
            .await
            .map_err(|e| internal(&e, "checking blocked keys"))?;
        if blocked {
            return Err(Problem::new(
                ProblemType::BadPublicKey,
                "the CSR's public key is blocked: a certificate for it was revoked as compromised",
            ));
        }
        Ok(())
    }
}

pub(crate) fn hex_sha256(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn list(ids: &[Identifier]) -> String {
    ids.iter()
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_name(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "pending",
        OrderStatus::Ready => "ready",
        OrderStatus::Processing => "processing",
        OrderStatus::Valid => "valid",
        OrderStatus::Invalid => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_prefers_csr_then_first_short_dns_name() {
        let ids = vec![
            Identifier::ip("127.0.0.1".parse().unwrap()),
            Identifier::dns(format!("{}.example.com", "a".repeat(60))),
            Identifier::dns("b.example.com"),
        ];
        assert_eq!(
            common_name_for(Some("B.example.com"), &ids).as_deref(),
            Some("b.example.com")
        );
        assert_eq!(
            common_name_for(None, &ids).as_deref(),
            Some("b.example.com")
        );
        assert_eq!(common_name_for(None, &ids[..1]), None);
    }
}
