//! The registration authority over gRPC: [`router`] serves a [`RegistrationAuthority`] (`cairn
//! ra serve`), and [`RemoteRa`] is the WFE's client that implements the trait.
//!
//! The RA's answers to clients are [`Problem`]s; they cross the wire whole, `Retry-After` and
//! help link included ([`WireProblem`]). A call the transport could not complete is a
//! `serverInternal` problem (the detail stays in the log), so an ACME client sees a 500 and
//! retries, possibly at another WFE and RA. What the RA advertises and the issuer's chains are
//! fixed for the RA's life and asked for without waiting, so [`RemoteRa::connect`] fetches them
//! once.

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::wire::{WireError, WireProblem, lend_by_value, rpc_service};
use cairn_api::ra::{
    DirectoryInfo, KeyChangeError, NewAccountRequest, NewOrderRequest, OrderView,
    RegistrationAuthority, RenewalInfo, RevocationRequester,
};
use cairn_core::{
    Account, AccountId, Authorization, AuthzId, Certificate, ChallengeId, Identifier, OrderId,
    Problem, Serial,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The gRPC service name.
pub const SERVICE: &str = "cairn.ra.RegistrationAuthority";

/// [`KeyChangeError`] as it crosses the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireKeyChangeError {
    /// [`KeyChangeError::KeyInUse`].
    KeyInUse(AccountId),
    /// [`KeyChangeError::Problem`].
    Problem(WireProblem),
}

impl WireError for KeyChangeError {
    type Wire = WireKeyChangeError;

    fn to_wire(self) -> WireKeyChangeError {
        match self {
            KeyChangeError::KeyInUse(id) => WireKeyChangeError::KeyInUse(id),
            KeyChangeError::Problem(p) => WireKeyChangeError::Problem(p.to_wire()),
        }
    }

    fn from_wire(wire: WireKeyChangeError) -> Self {
        match wire {
            WireKeyChangeError::KeyInUse(id) => KeyChangeError::KeyInUse(id),
            WireKeyChangeError::Problem(p) => KeyChangeError::Problem(Problem::from_wire(p)),
        }
    }

    fn transport(method: &'static str, error: RpcError) -> Self {
        KeyChangeError::Problem(Problem::transport(method, error))
    }
}

lend_by_value!(
    Account,
    NewAccountRequest,
    NewOrderRequest,
    RevocationRequester,
    Option<Vec<String>>
);

/// What the RA answers without waiting: the directory's `meta`, the polling interval and the
/// issuer's chains.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaInfo {
    /// [`RegistrationAuthority::directory_info`].
    pub directory: DirectoryInfo,
    /// [`RegistrationAuthority::retry_after`].
    pub retry_after: Duration,
    /// [`RegistrationAuthority::chains`] of each issuer ID.
    pub chains: BTreeMap<String, Vec<String>>,
}

/// The methods of `ra`; `issuer_ids` are the issuer IDs whose chains the WFEs serve.
pub fn router(ra: Arc<dyn RegistrationAuthority>, issuer_ids: Vec<String>) -> crate::RpcRouter {
    let info = ra.clone();
    methods(ra).unary("Info", move |(): ()| {
        let ra = info.clone();
        let chains = issuer_ids
            .iter()
            .map(|id| (id.clone(), ra.chains(id)))
            .collect();
        async move {
            RaInfo {
                directory: ra.directory_info(),
                retry_after: ra.retry_after(),
                chains,
            }
        }
    })
}

/// A registration authority in another process.
#[derive(Debug, Clone)]
pub struct RemoteRa {
    client: RpcClient,
    info: Arc<RaInfo>,
}

impl RemoteRa {
    /// A client of the RAs at `configs` (calls go round them, and on to the next when one is
    /// down: [`RpcClient::new_many`]), after asking one what it advertises (so this fails when
    /// none answers). All must be instances of one RA configuration.
    pub async fn connect(configs: &[RpcClientConfig]) -> Result<Self, RpcError> {
        let client = RpcClient::new_many(SERVICE, configs)?;
        let info: RaInfo = client.call("Info", ()).await?;
        Ok(Self {
            client,
            info: Arc::new(info),
        })
    }
}

rpc_service! {
    /// The trait's async methods (`Info` is added by [`router`]).
    methods: SERVICE, RegistrationAuthority => RemoteRa {
        fn directory_info(&self) -> DirectoryInfo {
            self.info.directory.clone()
        }

        fn retry_after(&self) -> Duration {
            self.info.retry_after
        }

        fn chains(&self, issuer_id: &str) -> Vec<String> {
            self.info.chains.get(issuer_id).cloned().unwrap_or_default()
        }
    }

    fn new_account(req: NewAccountRequest => NewAccountRequest)
        -> Result<(Account, bool), Problem>;
    fn get_account(id: &AccountId => AccountId) -> Result<Account, Problem>;
    fn get_account_by_key(thumbprint: &str => String) -> Result<Account, Problem>;
    fn update_account(
        account: Account => Account,
        contact: Option<Vec<String>> => Option<Vec<String>>,
        deactivate: bool => bool
    ) -> Result<Account, Problem>;
    fn change_key(
        account: &Account => Account,
        new_jwk: serde_json::Value => serde_json::Value,
        new_thumbprint: &str => String
    ) -> Result<Account, KeyChangeError>;
    fn eab_hmac_key(key_id: &str => String) -> Result<Option<Vec<u8>>, Problem>;
    fn new_order(account: &Account => Account, req: NewOrderRequest => NewOrderRequest)
        -> Result<OrderView, Problem>;
    fn get_order(account: &Account => Account, id: &OrderId => OrderId)
        -> Result<OrderView, Problem>;
    fn list_orders(account: &Account => Account, page: u64 => u64, per_page: u64 => u64)
        -> Result<(Vec<OrderId>, bool), Problem>;
    fn finalize(
        account: &Account => Account,
        order_id: &OrderId => OrderId,
        csr_der: &[u8] => Vec<u8>
    ) -> Result<OrderView, Problem>;
    fn get_authorization(account: &Account => Account, id: &AuthzId => AuthzId)
        -> Result<Authorization, Problem>;
    fn deactivate_authorization(account: &Account => Account, id: &AuthzId => AuthzId)
        -> Result<Authorization, Problem>;
    fn new_authorization(account: &Account => Account, identifier: &Identifier => Identifier)
        -> Result<(Authorization, bool), Problem>;
    fn respond_to_challenge(
        account: &Account => Account,
        authz_id: &AuthzId => AuthzId,
        challenge_id: &ChallengeId => ChallengeId
    ) -> Result<Authorization, Problem>;
    fn get_certificate(serial: &Serial => Serial) -> Result<Certificate, Problem>;
    fn revoke(
        requester: RevocationRequester => RevocationRequester,
        cert_der: &[u8] => Vec<u8>,
        reason: Option<u8> => Option<u8>
    ) -> Result<Certificate, Problem>;
    fn renewal_info(id: &str => String) -> Result<RenewalInfo, Problem>;
}
