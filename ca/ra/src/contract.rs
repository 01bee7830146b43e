//! [`Ra`] as the WFE sees it: the [`RegistrationAuthority`] implementation. Each call goes to
//! the `Ra` method of the same name, so in-process callers that hold an `Ra` and the WFE that
//! holds the trait get the same behaviour.

use crate::Ra;
use async_trait::async_trait;
use cairn_api::ra::{
    DirectoryInfo, KeyChangeError, NewAccountRequest, NewOrderRequest, OrderView,
    RegistrationAuthority, RenewalInfo, RevocationRequester,
};
use cairn_core::{
    Account, AccountId, Authorization, AuthzId, Certificate, ChallengeId, OrderId, Problem, Serial,
};
use std::time::Duration;

#[async_trait]
impl RegistrationAuthority for Ra {
    fn directory_info(&self) -> DirectoryInfo {
        let cfg = self.config();
        DirectoryInfo {
            caa_identities: cfg.caa_identities.clone(),
            external_account_required: cfg.external_account_required,
            profiles: cfg
                .profiles
                .iter()
                .map(|(name, p)| (name.clone(), p.description.clone()))
                .collect(),
        }
    }

    fn retry_after(&self) -> Duration {
        Ra::retry_after(self)
    }

    fn chains(&self, issuer_id: &str) -> Vec<String> {
        Ra::chains(self, issuer_id)
    }

    async fn new_account(&self, req: NewAccountRequest) -> Result<(Account, bool), Problem> {
        Ra::new_account(self, req).await
    }

    async fn get_account(&self, id: &AccountId) -> Result<Account, Problem> {
        Ra::get_account(self, id).await
    }

    async fn get_account_by_key(&self, thumbprint: &str) -> Result<Account, Problem> {
        Ra::get_account_by_key(self, thumbprint).await
    }

    async fn update_account(
        &self,
        account: Account,
        contact: Option<Vec<String>>,
        deactivate: bool,
    ) -> Result<Account, Problem> {
        Ra::update_account(self, account, contact, deactivate).await
    }

    async fn change_key(
        &self,
        account: &Account,
        new_jwk: serde_json::Value,
        new_thumbprint: &str,
    ) -> Result<Account, KeyChangeError> {
        Ra::change_key(self, account, new_jwk, new_thumbprint).await
    }

    async fn eab_hmac_key(&self, key_id: &str) -> Result<Option<Vec<u8>>, Problem> {
        Ra::eab_hmac_key(self, key_id).await
    }

    async fn new_order(
        &self,
        account: &Account,
        req: NewOrderRequest,
    ) -> Result<OrderView, Problem> {
        Ra::new_order(self, account, req).await
    }

    async fn get_order(&self, account: &Account, id: &OrderId) -> Result<OrderView, Problem> {
        Ra::get_order(self, account, id).await
    }

    async fn list_orders(
        &self,
        account: &Account,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<OrderId>, bool), Problem> {
        Ra::list_orders(self, account, page, per_page).await
    }

    async fn finalize(
        &self,
        account: &Account,
        order_id: &OrderId,
        csr_der: &[u8],
    ) -> Result<OrderView, Problem> {
        Ra::finalize(self, account, order_id, csr_der).await
    }

    async fn get_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem> {
        Ra::get_authorization(self, account, id).await
    }

    async fn deactivate_authorization(
        &self,
        account: &Account,
        id: &AuthzId,
    ) -> Result<Authorization, Problem> {
        Ra::deactivate_authorization(self, account, id).await
    }

    async fn new_authorization(
        &self,
        account: &Account,
        identifier: &cairn_core::Identifier,
    ) -> Result<(Authorization, bool), Problem> {
        Ra::new_authorization(self, account, identifier).await
    }

    async fn respond_to_challenge(
        &self,
        account: &Account,
        authz_id: &AuthzId,
        challenge_id: &ChallengeId,
    ) -> Result<Authorization, Problem> {
        Ra::respond_to_challenge(self, account, authz_id, challenge_id).await
    }

    async fn get_certificate(&self, serial: &Serial) -> Result<Certificate, Problem> {
        Ra::get_certificate(self, serial).await
    }

    async fn revoke(
        &self,
        requester: RevocationRequester,
        cert_der: &[u8],
        reason: Option<u8>,
    ) -> Result<Certificate, Problem> {
        Ra::revoke(self, requester, cert_der, reason).await
    }

    async fn renewal_info(&self, id: &str) -> Result<RenewalInfo, Problem> {
        Ra::renewal_info(self, id).await
    }
}
