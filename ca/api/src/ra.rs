//! The registration authority's contract: [`RegistrationAuthority`] is everything the ACME front
//! end asks of the RA, with the requests and views that cross between them. The WFE has verified
//! each request's JWS (and an EAB MAC) before it calls; the RA decides policy and answers with
//! client-facing [`Problem`]s, internal failures already logged and hidden behind
//! `serverInternal`.
//!
//! Also here: [`RevocationListener`], the hook through which the RA tells the status services
//! (CRL updater, OCSP cache) about each revocation.

use async_trait::async_trait;
use cairn_core::{
    Account, AccountId, Authorization, AuthzId, Certificate, ChallengeId, Identifier, Order,
    OrderId, OrderStatus, Problem, Revocation, Serial,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// A verified newAccount request (the WFE has checked the JWS and, if present, the EAB MAC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAccountRequest {
    /// The account key, public JWK.
    pub jwk: serde_json::Value,
    /// Its RFC 7638 thumbprint.
    pub thumbprint: String,
    /// Contact URLs.
    pub contact: Vec<String>,
    /// `termsOfServiceAgreed`.
    pub terms_of_service_agreed: bool,
    /// The EAB key ID whose MAC the WFE verified.
    pub eab_key_id: Option<String>,
    /// The client's address.
    pub remote_ip: Option<String>,
}

/// Why a key change was refused.
#[derive(Debug)]
pub enum KeyChangeError {
    /// The new key already belongs to this account.
    KeyInUse(AccountId),
    /// Anything else.
    Problem(Problem),
}

/// A newOrder request as the WFE decoded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewOrderRequest {
    /// Requested identifiers.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore.
    pub not_before: Option<OffsetDateTime>,
    /// Requested notAfter.
    pub not_after: Option<OffsetDateTime>,
    /// Requested profile.
    pub profile: Option<String>,
    /// RFC 9773 `replaces`.
    pub replaces: Option<String>,
}

/// An order with its status as the client sees it now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderView {
    /// The stored order.
    pub order: Order,
    /// The status per RFC 8555 §7.1.6 at the time of the view.
    pub status: OrderStatus,
}

/// Who asks for the revocation; the WFE has verified the JWS signature for each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RevocationRequester {
    /// An account (kid-signed request).
    Account(Account),
    /// The holder of the certificate's private key (jwk-signed request); the field is the JWK's
    /// RFC 7638 thumbprint, which must match the certificate's public key.
    CertificateKey(String),
}

/// A renewal window as served to clients (RFC 9773).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalInfo {
    /// Window start.
    pub start: OffsetDateTime,
    /// Window end.
    pub end: OffsetDateTime,
    /// Why the window is what it is, for windows moved to the past.
    pub explanation_url: Option<String>,
    /// Seconds until the client should ask again.
    pub retry_after_secs: u64,
}

/// What the ACME directory's `meta` says about the RA's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryInfo {
    /// Issuer domain names that identify this CA in CAA records (`meta.caaIdentities`).
    pub caa_identities: Vec<String>,
    /// New accounts need External Account Binding (`meta.externalAccountRequired`).
    pub external_account_required: bool,
    /// The certificate profiles offered, by name, with their descriptions (`meta.profiles`).
    pub profiles: BTreeMap<String, String>,
}

/// Everything the WFE asks of the RA.
#[async_trait]
pub trait RegistrationAuthority: Send + Sync + 'static {
    /// The policy the directory advertises.
    fn directory_info(&self) -> DirectoryInfo;
    /// How long a client should wait before polling something in progress.
    fn retry_after(&self) -> Duration;
    /// The issuer's PEM chains for `issuer_id` (default first) to serve after a leaf.
    fn chains(&self, issuer_id: &str) -> Vec<String>;

    /// Creates an account, or returns the existing one for the same key (RFC 8555 §7.3.1). The
    /// boolean is true when the account was created.
    async fn new_account(&self, req: NewAccountRequest) -> Result<(Account, bool), Problem>;
    /// Looks an account up by ID (`accountDoesNotExist` if there is none).
    async fn get_account(&self, id: &AccountId) -> Result<Account, Problem>;
    /// Looks an account up by key thumbprint (`accountDoesNotExist` if there is none).
    async fn get_account_by_key(&self, thumbprint: &str) -> Result<Account, Problem>;
    /// Updates contacts and/or deactivates (RFC 8555 §7.3.2, §7.3.6).
    async fn update_account(
        &self,
        account: Account,
        contact: Option<Vec<String>>,
        deactivate: bool,
    ) -> Result<Account, Problem>;
    /// Replaces the account key (RFC 8555 §7.3.5); the WFE has verified both signatures.
    async fn change_key(
        &self,
        account: &Account,
        new_jwk: serde_json::Value,
        new_thumbprint: &str,
    ) -> Result<Account, KeyChangeError>;
    /// The HMAC key of an unbound EAB key ID (`None` if unknown), for the WFE to verify a
    /// binding; `unauthorized` if the key was used already.
    async fn eab_hmac_key(&self, key_id: &str) -> Result<Option<Vec<u8>>, Problem>;

    /// Creates an order, or reuses a pending or ready one for the same identifiers.
    async fn new_order(
        &self,
        account: &Account,
        req: NewOrderRequest,
    ) -> Result<OrderView, Problem>;
    /// An order of `account`; another account's order is `notFound`, so IDs reveal nothing.
    async fn get_order(&self, account: &Account, id: &OrderId) -> Result<OrderView, Problem>;
    /// A page of the account's order IDs, newest first, and whether there is a next page.
    async fn list_orders(
        &self,
        account: &Account,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<OrderId>, bool), Problem>;
    /// Finalizes a ready order with a CSR (DER): `valid` if issuance finished within the RA's
    /// wait, else `processing`.
    async fn finalize(
        &self,
        account: &Account,
        order_id: &OrderId,
        csr_der: &[u8],
    ) -> Result<OrderView, Problem>;

    /// An authorization of `account`, with its expiry applied to its status.
    async fn get_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem>;
    /// Deactivates an authorization (RFC 8555 §7.5.2).
    async fn deactivate_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem>;
    /// Creates a pre-authorization for one identifier (RFC 8555 §7.4.1, `newAuthz`), or returns
    /// the account's pending or valid authorization for it. The boolean is true when created.
    async fn new_authorization(
        &self,
        account: &Account,
        identifier: &Identifier,
    ) -> Result<(Authorization, bool), Problem>;
    /// Starts validation of a challenge (RFC 8555 §7.5.1) and returns the authorization as it
    /// stands.
    async fn respond_to_challenge(
        &self,
        account: &Account,
        authz_id: &AuthzId,
        challenge_id: &ChallengeId,
    ) -> Result<Authorization, Problem>;

    /// A stored certificate by serial.
    async fn get_certificate(&self, serial: &Serial) -> Result<Certificate, Problem>;
    /// Revokes a certificate given in DER (RFC 8555 §7.6); `reason` is the CRLReason code.
    async fn revoke(
        &self,
        requester: RevocationRequester,
        cert_der: &[u8],
        reason: Option<u8>,
    ) -> Result<Certificate, Problem>;
    /// The renewal information for an RFC 9773 certificate identifier.
    async fn renewal_info(&self, id: &str) -> Result<RenewalInfo, Problem>;
}

/// Something that must learn about every revocation as soon as storage has recorded it (the CRL
/// updater regenerates, an OCSP cache drops its answer). Called once per revoked certificate,
/// after the write succeeded; a listener cannot undo or fail the revocation, so it logs its own
/// errors.
#[async_trait]
pub trait RevocationListener: Send + Sync + 'static {
    /// `serial`, issued by `issuer_id`, was revoked.
    async fn certificate_revoked(&self, serial: &Serial, issuer_id: &str, revocation: &Revocation);
}
