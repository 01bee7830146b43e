//! Orders and authorizations: creation with Boulder-style reuse, status views, the account's
//! order list and authorization deactivation.

use crate::renewal_info::Replaces;
use crate::{ChallengeOffer, IdentifierPolicy, Ra, check_identifiers, internal, sa_problem};
use cairn_api::ra::{NewOrderRequest, OrderView};
use cairn_api::sa::NewOrderQuery;
use cairn_core::{
    Account, AccountId, Authorization, AuthzId, AuthzStatus, Challenge, ChallengeId,
    ChallengeStatus, ChallengeType, Identifier, IdentifierType, Order, OrderId, OrderStatus,
    Problem, ProblemType, order_status, order_status_of, random_id,
};
use time::OffsetDateTime;

/// Challenges offered for an identifier: wildcards only the DNS methods (RFC 8555 §7.1.3;
/// dns-account-01 and dns-persist-01 allow wildcards), IP addresses no DNS method (RFC 8738
/// §7). dns-account-01 needs the account URL (`account_url_known`).
fn challenge_types(
    id: &Identifier,
    wildcard: bool,
    offer: &ChallengeOffer,
    account_url_known: bool,
) -> Vec<ChallengeType> {
    let mut types = match (id.typ, wildcard) {
        (IdentifierType::Dns, true) => vec![ChallengeType::Dns01],
        (IdentifierType::Dns, false) => vec![
            ChallengeType::Http01,
            ChallengeType::Dns01,
            ChallengeType::TlsAlpn01,
        ],
        (IdentifierType::Ip, _) => return vec![ChallengeType::Http01, ChallengeType::TlsAlpn01],
    };
    if offer.dns_account01 && account_url_known {
        types.push(ChallengeType::DnsAccount01);
    }
    if offer.dns_persist01 {
        types.push(ChallengeType::DnsPersist01);
    }
    types
}

impl Ra {
    /// Creates an order, reusing a pending or ready order for the same identifiers and valid or
    /// pending authorizations of the same account where possible.
    pub async fn new_order(
        &self,
        account: &Account,
        req: NewOrderRequest,
    ) -> Result<OrderView, Problem> {
        let cfg = &self.inner.config;
        let (profile_name, profile) = cfg.profile(req.profile.as_deref())?;
        let policy = IdentifierPolicy {
            allow_ip: cfg.identifiers.allow_ip && profile.allow_ip,
            max_identifiers: cfg.identifiers.max_identifiers.min(profile.max_identifiers),
            ..cfg.identifiers.clone()
        };
        let identifiers = check_identifiers(&req.identifiers, &policy).map_err(|p| {
            if p.typ == ProblemType::UnsupportedIdentifier && cfg.identifiers.allow_ip {
                Problem {
                    detail: format!(
                        "{}; the profile {profile_name:?} does not allow IP addresses",
                        p.detail
                    ),
                    ..p
                }
            } else {
                p
            }
        })?;
        if req.not_before.is_some() || req.not_after.is_some() {
            return Err(Problem::malformed(
                "notBefore and notAfter are not supported: validity is set by the profile",
            ));
        }
        let profile_name = profile_name.to_owned();
        let now = self.now();
        let sa = &self.inner.sa;
        // A reused authorization must have been validated within the profile's reuse window and
        // outlive the order by a margin, so the order cannot turn invalid while finalizing.
        let min_expiry = (now + time::Duration::days(1))
            .max(now + cfg.valid_authz_lifetime - profile.authz_reuse);
        // Everything read before the write comes in one storage call. A replacement is never
        // served by another order: it must reserve its certificate.
        let context = sa
            .get_new_order_context(&NewOrderQuery {
                account: account.id.clone(),
                identifiers: identifiers.clone(),
                profile: Some(profile_name.clone()),
                now,
                reuse_order: req.replaces.is_none(),
                authz_expires_after: min_expiry,
            })
            .await
            .map_err(|e| internal(&e, "looking up the account's policy and what to reuse"))?;
        let account_policy = context.policy;
        crate::account_policy::check_account_policy(account_policy.as_ref(), &identifiers)?;
        let replacement = match &req.replaces {
            None => None,
            Some(replaces) => match self.check_replaces(account, replaces, &identifiers).await? {
                Replaces::Free(r) => Some(r),
                Replaces::Outstanding(view) => return Ok(*view),
            },
        };
        if let Some((existing, authzs)) = context.order {
            let status = order_status(&existing, &authzs, now);
            if matches!(status, OrderStatus::Pending | OrderStatus::Ready) {
                return Ok(OrderView {
                    order: existing,
                    status,
                });
            }
        }

        // Limits apply to new orders only (a reused order above costs nothing); ARI
        // replacements are exempt from the certificate counts of what they renew only, as at
        // Let's Encrypt.
        self.check_paused(&account.id, &identifiers).await?;
        let limits = crate::rate_limits::new_order_transactions(
            &account.id,
            &identifiers,
            replacement.as_ref().map(|r| r.identifiers.as_slice()),
        );
        self.spend_limits(&limits).await?;
        let mut authz_ids = Vec::with_capacity(identifiers.len());
        let mut authzs = Vec::with_capacity(identifiers.len());
        let mut new_authzs = Vec::new();
        let mut earliest_expiry = now + profile.order_lifetime;
        for (id, reused) in identifiers.iter().zip(context.authzs) {
            let authz = match reused {
                Some(a) => a,
                None => {
                    let mut a =
                        self.fresh_authz(&account.id, id.authz_identifier(), id.is_wildcard(), now);
                    self.pre_validate(account_policy.as_ref(), id, &mut a, now);
                    new_authzs.push(a.clone());
                    a
                }
            };
            earliest_expiry = earliest_expiry.min(authz.expires);
            authz_ids.push(authz.id.clone());
            authzs.push(authz);
        }
        let order = Order {
            id: OrderId::random(),
            account_id: account.id.clone(),
            status: OrderStatus::Pending,
            identifiers,
            authz_ids,
            expires: earliest_expiry,
            not_before: None,
            not_after: None,
            error: None,
            certificate_serial: None,
            profile: Some(profile_name),
            replaces: req.replaces,
            csr_der: None,
            created_at: now,
        };
        if let Err(e) = sa.new_order_and_authzs(&order, &new_authzs).await {
            self.refund_limits(&limits).await;
            return Err(internal(&e, "storing order"));
        }
        if let Some(replacement) = &replacement
            && let Err(problem) = self.reserve_replacement(replacement, &order.id).await
        {
            // Another newOrder took the certificate first: this order never reaches the client.
            if let Err(e) = sa.fail_order(&order.id, None, &problem).await {
                tracing::warn!(order = %order.id, error = %e, "failing a replacement order that lost its reservation");
            }
            self.refund_limits(&limits).await;
            return Err(problem);
        }
        metrics::counter!("cairn_orders_created_total").increment(1);
        // The order's authorizations are all in hand (reused or just stored): no read back.
        let status = order_status(&order, &authzs, now);
        Ok(OrderView { order, status })
    }

    pub(crate) fn fresh_authz(
        &self,
        account: &AccountId,
        identifier: Identifier,
        wildcard: bool,
        now: OffsetDateTime,
    ) -> Authorization {
        let cfg = &self.inner.config;
        let challenges = challenge_types(
            &identifier,
            wildcard,
            &cfg.challenges,
            !cfg.account_uri_prefixes.is_empty(),
        )
        .into_iter()
        .map(|typ| Challenge {
            id: ChallengeId::random(),
            typ,
            token: random_id(32),
            status: ChallengeStatus::Pending,
            validated: None,
            error: None,
            validation_record: Vec::new(),
        })
        .collect();
        Authorization {
            id: AuthzId::random(),
            account_id: account.clone(),
            identifier,
            status: AuthzStatus::Pending,
            expires: now + self.inner.config.pending_authz_lifetime,
            wildcard,
            challenges,
            created_at: now,
        }
    }

    /// Computes the client-visible status of a stored order.
    pub(crate) async fn view(&self, order: Order) -> Result<OrderView, Problem> {
        let status = match order.status {
            OrderStatus::Pending | OrderStatus::Ready => {
                let authzs = self
                    .inner
                    .sa
                    .get_authorizations(&order.authz_ids)
                    .await
                    .map_err(|e| internal(&e, "loading order authorizations"))?;
                order_status(&order, &authzs, self.now())
            }
            s => s,
        };
        Ok(OrderView { order, status })
    }

    /// An order of `account` (404 for other accounts' orders, so IDs reveal nothing).
    ///
    /// Clients poll this while their order is pending: the order and its authorizations'
    /// states come in one read.
    pub async fn get_order(&self, account: &Account, id: &OrderId) -> Result<OrderView, Problem> {
        let (order, states) = self
            .inner
            .sa
            .get_order_with_authz_states(id)
            .await
            .map_err(|e| sa_problem(e, "order"))?;
        if order.account_id != account.id {
            return Err(Problem::not_found("order not found"));
        }
        let now = self.now();
        let status = order_status_of(&order, states.iter().map(|s| s.status_at(now)), now);
        Ok(OrderView { order, status })
    }

    /// A page of the account's order IDs, newest first, and whether there is a next page.
    pub async fn list_orders(
        &self,
        account: &Account,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<OrderId>, bool), Problem> {
        let offset = page
            .checked_mul(per_page)
            .filter(|o| i64::try_from(*o).is_ok())
            .ok_or_else(|| Problem::malformed("cursor is out of range"))?;
        let limit = per_page.saturating_add(1).min(i64::MAX as u64);
        let mut ids = self
            .inner
            .sa
            .get_order_ids_for_account(&account.id, offset, limit)
            .await
            .map_err(|e| internal(&e, "listing orders"))?;
        let more = ids.len() as u64 > per_page;
        ids.truncate(per_page as usize);
        Ok((ids, more))
    }

    /// An authorization of `account`, with its expiry applied to its status.
    pub async fn get_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem> {
        let mut authz = self
            .inner
            .sa
            .get_authorization(id)
            .await
            .map_err(|e| sa_problem(e, "authorization"))?;
        if authz.account_id != account.id {
            return Err(Problem::not_found("authorization not found"));
        }
        authz.status = authz.status_at(self.now());
        Ok(authz)
    }

    /// Deactivates an authorization (RFC 8555 §7.5.2).
    pub async fn deactivate_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem> {
        let authz = self.get_authorization(account, id).await?;
        match authz.status {
            AuthzStatus::Pending | AuthzStatus::Valid => {}
            AuthzStatus::Deactivated => return Ok(authz),
            other => {
                return Err(Problem::malformed(format!(
                    "an authorization that is {} cannot be deactivated",
                    other.as_str()
                )));
            }
        }
        self.inner
            .sa
            .deactivate_authorization(id)
            .await
            .map_err(|e| internal(&e, "deactivating authorization"))?;
        self.get_authorization(account, id).await
    }

    /// Refuses to finalize an order whose authorizations were validated longer ago than its
    /// profile's reuse window ([`crate::Profile::authz_reuse`]). newOrder reuses only
    /// authorizations inside the window, but an order can wait for finalize well past it
    /// (`shortlived`: 7 hours of reuse, 7 days of order lifetime): the window must still hold
    /// when the certificate is issued.
    pub(crate) fn check_authz_reuse_window(
        &self,
        order: &Order,
        authzs: &[Authorization],
    ) -> Result<(), Problem> {
        let (name, profile) = self.inner.config.profile(order.profile.as_deref())?;
        let oldest_allowed = self.now() - profile.authz_reuse;
        let stale: Vec<&str> = authzs
            .iter()
            .filter(|a| a.validated_at().is_some_and(|t| t < oldest_allowed))
            .map(|a| a.identifier.value.as_str())
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        Err(Problem::unauthorized(format!(
            "the authorization for {} was validated more than {} ago, longer than the {name:?} \
             profile allows; create a new order to validate again",
            stale.join(", "),
            profile.authz_reuse,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_get_only_dns_methods_and_ips_get_none() {
        let off = ChallengeOffer {
            dns_account01: false,
            dns_persist01: false,
        };
        let on = ChallengeOffer::default();
        assert_eq!(
            challenge_types(&Identifier::dns("example.com"), true, &off, true),
            vec![ChallengeType::Dns01]
        );
        assert_eq!(
            challenge_types(&Identifier::dns("example.com"), true, &on, true),
            vec![
                ChallengeType::Dns01,
                ChallengeType::DnsAccount01,
                ChallengeType::DnsPersist01
            ]
        );
        // Without a known account URL, no dns-account-01.
        assert!(
            !challenge_types(&Identifier::dns("example.com"), false, &on, false)
                .contains(&ChallengeType::DnsAccount01)
        );
        let ip = Identifier::ip("127.0.0.1".parse().unwrap());
        let ip_types = challenge_types(&ip, false, &on, true);
        assert_eq!(
            ip_types,
            vec![ChallengeType::Http01, ChallengeType::TlsAlpn01]
        );
        assert_eq!(
            challenge_types(&Identifier::dns("example.com"), false, &off, true).len(),
            3
        );
    }
}
