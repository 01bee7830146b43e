//! ACME Renewal Information (RFC 9773): suggested renewal windows, early renewal requested by
//! the operator or forced by revocation, and the `replaces` field of newOrder.

use crate::{Ra, internal, sa_problem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_api::SaError;
use cairn_api::ra::OrderView;
use cairn_api::ra::RenewalInfo;
use cairn_core::TtlCache;
use cairn_core::{
    Account, Certificate, Identifier, OrderId, OrderStatus, Problem, ProblemType, Serial,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// ARI settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AriConfig {
    /// `explanationURL` sent with windows moved to the past (revocation, early renewal).
    pub explanation_url: Option<String>,
    /// How long clients should wait before asking again (`Retry-After`), before jitter.
    #[serde(with = "crate::humane_duration")]
    pub retry_after: Duration,
    /// How long a computed renewal window is kept in memory and served again without reading
    /// storage (renewalInfo is hot, unauthenticated and cacheable). A revocation recorded by
    /// this server clears the cache at once; a change made by another process (`cairn admin
    /// ari mark`, `cairn admin revoke`) is seen within this time. `0s` turns the cache off.
    #[serde(with = "crate::humane_duration")]
    pub cache_for: Duration,
}

impl Default for AriConfig {
    fn default() -> Self {
        Self {
            explanation_url: None,
            retry_after: Duration::hours(6),
            cache_for: Duration::seconds(30),
        }
    }
}

/// What newOrder's `replaces` allows.
#[derive(Debug)]
pub(crate) enum Replaces {
    /// A new replacement order may be created and must then reserve the certificate.
    Free(Replacement),
    /// This account's replacement order for the same identifiers is still pending or ready.
    Outstanding(Box<OrderView>),
}

/// The certificate a new order replaces.
#[derive(Debug, Clone)]
pub(crate) struct Replacement {
    /// Its serial.
    pub(crate) serial: Serial,
    /// Its identifiers: the renewal is exempt from the certificate counts of these only.
    pub(crate) identifiers: Vec<Identifier>,
    /// The (invalid) order it is marked replaced by now, which the new order takes over from.
    pub(crate) holder: Option<OrderId>,
}

/// A renewal window: start, end, and whether it was moved to the past (revocation, early
/// renewal).
pub(crate) type Window = (OffsetDateTime, OffsetDateTime, bool);

/// Recently computed renewal windows by RFC 9773 certificate identifier (see
/// [`AriConfig::cache_for`]); only identifiers of stored certificates are ever put.
pub(crate) struct WindowCache(TtlCache<String, Window>);

impl WindowCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        WindowCache(TtlCache::new(ttl, max_entries))
    }
}

impl std::ops::Deref for WindowCache {
    type Target = TtlCache<String, Window>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Windows kept at most unless `[ra] renewal_window_cache_entries` says otherwise.
pub(crate) const WINDOW_CACHE_ENTRIES: usize = 100_000;

#[async_trait::async_trait]
impl crate::RevocationListener for WindowCache {
    /// Forgets everything: a certificate was revoked, its window moves to the past.
    async fn certificate_revoked(
        &self,
        _serial: &Serial,
        _issuer_id: &str,
        _revocation: &cairn_core::Revocation,
    ) {
        self.clear();
    }
}

/// The suggested window for `cert` at `now`: normally the first half of the last third of its
/// lifetime (days 60 to 75 of 90, as Let's Encrypt); already past if the certificate is
/// revoked or marked for early renewal, so clients renew at once.
pub fn renewal_window(
    cert: &Certificate,
    now: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime, bool) {
    let urgent = [
        cert.revocation.as_ref().map(|r| r.revoked_at),
        cert.renew_by,
    ]
    .into_iter()
    .flatten()
    .min();
    if let Some(t) = urgent {
        let end = t.min(now) - Duration::seconds(1);
        return (end - Duration::hours(1), end, true);
    }
    let lifetime = cert.not_after - cert.not_before;
    let start = cert.not_before + lifetime * 2 / 3;
    let end = cert.not_before + lifetime * 5 / 6;
    (start, end, false)
}

/// Parses an RFC 9773 certificate identifier: `base64url(AKI keyIdentifier) "."
/// base64url(serial DER content octets)`.
pub fn parse_cert_id(id: &str) -> Result<(Vec<u8>, Serial), Problem> {
    let malformed = || {
        Problem::malformed(
            "a certificate identifier is base64url(authority key identifier) \".\" base64url(serial)",
        )
    };
    let (aki, serial) = id.split_once('.').ok_or_else(malformed)?;
    let aki = URL_SAFE_NO_PAD.decode(aki).map_err(|_| malformed())?;
    let serial = URL_SAFE_NO_PAD.decode(serial).map_err(|_| malformed())?;
    if aki.is_empty() || serial.is_empty() || serial.len() > 21 {
        return Err(malformed());
    }
    Ok((aki, Serial::from_bytes(&serial)))
}

/// The RFC 9773 identifier of a certificate (for tests and tools).
pub fn cert_id(cert_der: &[u8]) -> Option<String> {
    let info = cairn_x509::CertInfo::from_der(cert_der).ok()?;
    let aki = info.authority_key_id?;
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki),
        URL_SAFE_NO_PAD.encode(&info.serial)
    ))
}

impl Ra {
    /// The certificate an RFC 9773 identifier names, if this CA issued it.
    async fn certificate_for_id(&self, id: &str) -> Result<Certificate, Problem> {
        let (aki, serial) = parse_cert_id(id)?;
        let cert = self
            .inner
            .sa
            .get_certificate(&serial)
            .await
            .map_err(|e| sa_problem(e, "certificate"))?;
        let info = cairn_x509::CertInfo::from_der(&cert.der)
            .map_err(|e| internal(&e, "parsing a stored certificate"))?;
        if info.authority_key_id.as_deref() != Some(aki.as_slice()) {
            return Err(Problem::not_found("certificate not found"));
        }
        Ok(cert)
    }

    /// The renewal information for an RFC 9773 certificate identifier.
    pub async fn renewal_info(&self, id: &str) -> Result<RenewalInfo, Problem> {
        let cache = &self.inner.ari_cache;
        let (start, end, urgent) = match cache.get(id) {
            Some(window) => window,
            None => {
                let cert = self.certificate_for_id(id).await?;
                let window = renewal_window(&cert, self.now());
                cache.put(id.to_owned(), window);
                window
            }
        };
        let cfg = &self.inner.config.ari;
        // Jitter spreads clients' polling: up to a tenth of the interval.
        let base = cfg.retry_after.whole_seconds().max(60) as u64;
        let mut b = [0u8; 2];
        cairn_core::random::fill(&mut b);
        let jitter = u64::from(u16::from_le_bytes(b)) % (base / 10 + 1);
        Ok(RenewalInfo {
            start,
            end,
            explanation_url: if urgent {
                cfg.explanation_url.clone()
            } else {
                None
            },
            retry_after_secs: base + jitter,
        })
    }

    /// Checks newOrder's `replaces` (RFC 9773 §5): the certificate exists, belongs to the
    /// account, shares an identifier with the order, and is not marked replaced by an order
    /// that is not `invalid` (one outstanding replacement per certificate; a valid one means
    /// it was replaced). An outstanding replacement order of the same account for the same
    /// identifiers is returned as [`Replaces::Outstanding`], so a retried newOrder gets it back.
    pub(crate) async fn check_replaces(
        &self,
        account: &Account,
        id: &str,
        identifiers: &[Identifier],
    ) -> Result<Replaces, Problem> {
        let cert = self.certificate_for_id(id).await.map_err(|p| {
            if p.typ == ProblemType::NotFound {
                Problem::malformed("replaces names no certificate issued by this CA")
            } else {
                p
            }
        })?;
        if cert.account_id != account.id {
            return Err(Problem::unauthorized(
                "replaces names a certificate of another account",
            ));
        }
        if !cert.identifiers.iter().any(|i| identifiers.contains(i)) {
            return Err(Problem::malformed(
                "the order shares no identifier with the certificate it replaces",
            ));
        }
        let Some(holder) = cert.replaced_by.clone() else {
            return Ok(Replaces::Free(Replacement {
                serial: cert.serial,
                identifiers: cert.identifiers,
                holder: None,
            }));
        };
        let existing = match self.inner.sa.get_order(&holder).await {
            Ok(order) => Some(self.view(order).await?),
            Err(SaError::NotFound) => None,
            Err(e) => return Err(internal(&e, "loading the replacement order")),
        };
        match existing {
            Some(view) if view.status == OrderStatus::Valid => Err(Problem::new(
                ProblemType::AlreadyReplaced,
                "the certificate has already been replaced",
            )),
            Some(view) if view.status == OrderStatus::Invalid => Ok(Replaces::Free(Replacement {
                serial: cert.serial,
                identifiers: cert.identifiers,
                holder: Some(holder),
            })),
            Some(view)
                if view.order.account_id == account.id
                    && view.order.identifiers == identifiers
                    && view.order.replaces.as_deref() == Some(id)
                    && matches!(view.status, OrderStatus::Pending | OrderStatus::Ready) =>
            {
                Ok(Replaces::Outstanding(Box::new(view)))
            }
            Some(view) => Err(Problem::new(
                ProblemType::AlreadyReplaced,
                format!(
                    "the certificate already has a replacement order ({}, {}); it can be \
                     replaced again once that order is invalid",
                    view.order.id,
                    format!("{:?}", view.status).to_lowercase()
                ),
            )),
            None => Ok(Replaces::Free(Replacement {
                serial: cert.serial,
                identifiers: cert.identifiers,
                holder: Some(holder),
            })),
        }
    }

    /// Marks the replaced certificate as replaced by the new `order` (compare-and-swap against
    /// the holder seen by [`Ra::check_replaces`]), so a concurrent newOrder naming the same
    /// certificate loses with `alreadyReplaced`.
    pub(crate) async fn reserve_replacement(
        &self,
        replacement: &Replacement,
        order: &OrderId,
    ) -> Result<(), Problem> {
        match self
            .inner
            .sa
            .reserve_replacement(&replacement.serial, replacement.holder.as_ref(), order)
            .await
        {
            Ok(()) => Ok(()),
            Err(SaError::Conflict(_)) => Err(Problem::new(
                ProblemType::AlreadyReplaced,
                "the certificate already has a replacement order",
            )),
            Err(e) => Err(internal(&e, "reserving the replaced certificate")),
        }
    }

    /// After issuance: records that the order's certificate replaced the old one.
    pub(crate) async fn record_replacement(&self, order: &cairn_core::Order) {
        let Some(id) = &order.replaces else { return };
        let Ok((_, serial)) = parse_cert_id(id) else {
            return;
        };
        match self.inner.sa.mark_replaced(&serial, &order.id).await {
            Ok(()) | Err(SaError::Conflict(_)) => {}
            Err(e) => tracing::error!(order = %order.id, error = %e, "recording replacement"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{AccountId, OrderId, Revocation, RevocationReason};
    use time::macros::datetime;

    fn cert(nb: OffsetDateTime, life: Duration) -> Certificate {
        Certificate {
            serial: Serial::random(),
            account_id: AccountId("a".into()),
            order_id: OrderId("o".into()),
            der: vec![],
            issuer_id: "i".into(),
            identifiers: vec![],
            not_before: nb,
            not_after: nb + life,
            spki_sha256: String::new(),
            revocation: None,
            renew_by: None,
            replaced_by: None,
            crl_shard: 0,
        }
    }

    #[test]
    fn window_is_in_the_last_third() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let c = cert(nb, Duration::days(90));
        let (s, e, urgent) = renewal_window(&c, nb);
        assert_eq!(s, nb + Duration::days(60));
        assert_eq!(e, nb + Duration::days(75));
        assert!(!urgent);
    }

    #[test]
    fn revoked_or_marked_certificates_have_a_past_window() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let now = nb + Duration::days(3);
        let mut c = cert(nb, Duration::days(90));
        c.renew_by = Some(now);
        let (s, e, urgent) = renewal_window(&c, now);
        assert!(urgent && e < now && s < e);
        let mut c = cert(nb, Duration::days(90));
        c.revocation = Some(Revocation {
            revoked_at: nb + Duration::days(1),
            reason: RevocationReason::KeyCompromise,
        });
        let (_, e, urgent) = renewal_window(&c, now);
        assert!(urgent && e < nb + Duration::days(1));
    }

    #[test]
    fn cert_ids_parse_strictly() {
        let (aki, serial) = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").unwrap();
        assert_eq!(aki.len(), 20);
        assert_eq!(serial.to_bytes(), vec![0x00, 0x87, 0x65, 0x43, 0x21]);
        for bad in ["", "abc", ".AIdl", "aYhb.", "a+b.cd", "aYhb.AId=l"] {
            assert!(parse_cert_id(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::RevocationListener;
    use time::macros::datetime;

    const W: Window = (
        datetime!(2026-07-01 00:00 UTC),
        datetime!(2026-07-15 00:00 UTC),
        false,
    );

    #[test]
    fn windows_are_served_from_the_cache_until_they_expire() {
        let cache = WindowCache::new(Duration::milliseconds(200), WINDOW_CACHE_ENTRIES);
        assert_eq!(cache.get("a.b"), None);
        cache.put("a.b".into(), W);
        assert_eq!(cache.get("a.b"), Some(W));
        assert_eq!(cache.get("a.c"), None);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(cache.get("a.b"), None);
    }

    #[test]
    fn a_zero_lifetime_turns_the_cache_off() {
        let cache = WindowCache::new(Duration::ZERO, WINDOW_CACHE_ENTRIES);
        cache.put("a.b".into(), W);
        assert_eq!(cache.get("a.b"), None);
    }

    #[test]
    fn the_cache_holds_at_most_its_configured_entries() {
        let cache = WindowCache::new(Duration::minutes(1), 2);
        let ids = ["a.1", "a.2", "a.3"];
        for id in ids {
            cache.put(id.into(), W);
        }
        let held = ids.iter().filter(|id| cache.get(**id).is_some()).count();
        assert!(held <= 2, "{held} windows held");
        assert_eq!(cache.get("a.3"), Some(W), "the newest is kept");
    }

    #[tokio::test]
    async fn a_revocation_clears_the_cache() {
        let cache = WindowCache::new(Duration::minutes(1), WINDOW_CACHE_ENTRIES);
        cache.put("a.b".into(), W);
        let revocation = cairn_core::Revocation {
            revoked_at: datetime!(2026-06-01 00:00 UTC),
            reason: cairn_core::RevocationReason::Unspecified,
        };
        cache
            .certificate_revoked(&Serial("01".into()), "issuer", &revocation)
            .await;
        assert_eq!(cache.get("a.b"), None);
    }
}
