//! What the services' unit tests share: `cairn-api`'s in-memory storage and fake issuer, and a
//! way to put certificates into that storage as issuance would.

use cairn_api::StorageAuthority;
use cairn_api::fake::{FakeIssuer, MemoryStorage};
use cairn_core::{
    Account, AccountId, AccountStatus, Certificate, FixedClock, Order, OrderId, OrderStatus,
    Revocation, Serial,
};
use std::sync::Arc;
use time::OffsetDateTime;

/// The tests' "now".
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// Storage, an issuer and a clock fixed at [`now`].
pub(crate) struct Parts {
    pub(crate) sa: MemoryStorage,
    pub(crate) issuer: Arc<FakeIssuer>,
    pub(crate) clock: Arc<FixedClock>,
}

impl Parts {
    pub(crate) async fn new() -> Parts {
        let sa = MemoryStorage::new();
        sa.new_account(&Account {
            id: AccountId("acct".into()),
            jwk: serde_json::json!({}),
            key_thumbprint: "thumb".into(),
            contact: Vec::new(),
            status: AccountStatus::Valid,
            created_at: now(),
            eab_key_id: None,
            initial_ip: None,
        })
        .await
        .unwrap();
        Parts {
            sa,
            issuer: Arc::new(FakeIssuer::new(now()).unwrap()),
            clock: Arc::new(FixedClock::new(now())),
        }
    }

    /// Stores a certificate of the fake issuer with serial `serial_hex`, valid for 90 days from
    /// a day ago, in `crl_shard`, revoked or not.
    pub(crate) async fn store(
        &self,
        serial_hex: &str,
        crl_shard: u32,
        revocation: Option<Revocation>,
    ) -> Serial {
        self.store_as(serial_hex, crl_shard, revocation, false)
            .await
    }

    /// Stores a precertificate whose final certificate never was (issue 14, finding 3).
    pub(crate) async fn store_precertificate(&self, serial_hex: &str) -> Serial {
        self.store_as(serial_hex, 0, None, true).await
    }

    async fn store_as(
        &self,
        serial_hex: &str,
        crl_shard: u32,
        revocation: Option<Revocation>,
        precertificate: bool,
    ) -> Serial {
        let order = Order {
            id: OrderId(format!("order-{serial_hex}")),
            account_id: AccountId("acct".into()),
            status: OrderStatus::Processing,
            identifiers: Vec::new(),
            authz_ids: Vec::new(),
            expires: now() + time::Duration::days(7),
            not_before: None,
            not_after: None,
            error: None,
            certificate_serial: None,
            profile: None,
            replaces: None,
            csr_der: None,
            created_at: now(),
        };
        self.sa.new_order_and_authzs(&order, &[]).await.unwrap();
        let serial = Serial(serial_hex.into());
        let cert = Certificate {
            serial: serial.clone(),
            account_id: order.account_id.clone(),
            order_id: order.id,
            der: vec![0],
            issuer_id: self.issuer_id(),
            identifiers: Vec::new(),
            not_before: now() - time::Duration::days(1),
            not_after: now() + time::Duration::days(89),
            spki_sha256: "key".into(),
            revocation,
            renew_by: None,
            replaced_by: None,
            crl_shard,
        };
        if precertificate {
            self.sa.add_precertificate(&cert).await.unwrap();
        } else {
            self.sa.finalize_order(&cert).await.unwrap();
        }
        serial
    }

    pub(crate) fn issuer_id(&self) -> String {
        cairn_api::CertificateIssuer::identity(&*self.issuer).issuer_id
    }
}
