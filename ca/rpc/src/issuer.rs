//! The issuer over gRPC: [`router`] serves a [`CertificateIssuer`] (`cairn ca serve`, the only
//! process holding the CA's keys), and [`RemoteIssuer`] is the client that implements the
//! trait for the RA, the CRL updater and the OCSP responder.
//!
//! What the issuer is ([`CertificateIssuer::identity`], and every issuer of an `IssuerSet`:
//! [`CertificateIssuer::identities`]) and the chains it serves
//! ([`CertificateIssuer::chains`]) are fixed for its life and asked for without waiting, so
//! [`RemoteIssuer::connect`] fetches them once. The OCSP `CertID` and nonce extension travel as
//! their DER; an issuer's own error stays what it is, and a call the transport could not
//! complete is [`IssuerError::Unavailable`].

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::server::RpcRouter;
use async_trait::async_trait;
use cairn_api::issuer::{
    CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError, IssuerIdentity,
};
use cairn_ocsp::asn1::CertId;
use cairn_ocsp::{CertStatus, ResponseParams};
use cairn_x509::CrlEntry;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::CrlReason;

/// The gRPC service name.
pub const SERVICE: &str = "cairn.ca.CertificateIssuer";

/// The `IssueFinal` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueFinalRequest {
    /// What to sign.
    pub req: IssueRequest,
    /// The precertificate signed for `req`, DER.
    #[serde(with = "cairn_core::base64_bytes")]
    pub precert_der: Vec<u8>,
    /// The TLS-encoded SCT list.
    #[serde(with = "cairn_core::base64_bytes")]
    pub sct_list: Vec<u8>,
}

/// What [`CertificateIssuer::identity`], [`CertificateIssuer::identities`] and
/// [`CertificateIssuer::chains`] answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerInfo {
    /// Who the issuer signs as by default.
    pub identity: IssuerIdentity,
    /// Every issuer it signs as (several active ones and retired ones, as `[[ca.issuers]]`
    /// configures them); an older issuer that sends none has only `identity`.
    #[serde(default)]
    pub identities: Vec<IssuerIdentity>,
    /// The chains of each issuer ID it signs end-entity certificates under.
    pub chains: BTreeMap<String, Vec<String>>,
}

/// The `SignCrl` request ([`CrlRequest`], owned).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignCrlRequest {
    /// The issuer ID.
    pub issuer_id: String,
    /// The shard.
    pub shard: u32,
    /// The cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// Entries: serial bytes, revocation time, CRLReason code.
    pub entries: Vec<(Vec<u8>, OffsetDateTime, u8)>,
}

/// A certificate's status in a `SignOcsp` request; the reason is the CRLReason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireCertStatus {
    /// [`CertStatus::Good`].
    Good,
    /// [`CertStatus::Revoked`].
    Revoked {
        /// When.
        revoked_at: OffsetDateTime,
        /// The CRLReason code.
        reason: Option<u32>,
    },
    /// [`CertStatus::Unknown`].
    Unknown,
}

/// The `SignOcsp` request ([`ResponseParams`], with the CertID and the nonce as DER).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignOcspRequest {
    /// The request's CertID, DER.
    #[serde(with = "cairn_core::base64_bytes")]
    pub cert_id_der: Vec<u8>,
    /// The status.
    pub status: WireCertStatus,
    /// producedAt.
    pub produced_at: OffsetDateTime,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The nonce extension to echo, DER.
    #[serde(default, with = "cairn_core::base64_bytes::option")]
    pub nonce_der: Option<Vec<u8>>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> IssuerError {
    IssuerError::InvalidRequest(format!("{what}: {e}"))
}

impl SignOcspRequest {
    fn new(params: &ResponseParams<'_>) -> Result<Self, IssuerError> {
        let status = match params.status {
            CertStatus::Good => WireCertStatus::Good,
            CertStatus::Unknown => WireCertStatus::Unknown,
            CertStatus::Revoked { revoked_at, reason } => WireCertStatus::Revoked {
                revoked_at,
                reason: reason.map(|r| r as u32),
            },
        };
        Ok(Self {
            cert_id_der: params.cert_id.to_der().map_err(|e| bad("CertID", e))?,
            status,
            produced_at: params.produced_at,
            this_update: params.this_update,
            next_update: params.next_update,
            nonce_der: params
                .nonce
                .map(Encode::to_der)
                .transpose()
                .map_err(|e| bad("nonce", e))?,
        })
    }

    /// Signs it with `issuer`; a CertID, nonce or reason that does not decode is refused.
    async fn sign(self, issuer: &dyn CertificateIssuer) -> Result<Vec<u8>, IssuerError> {
        let cert_id = CertId::from_der(&self.cert_id_der).map_err(|e| bad("CertID", e))?;
        let nonce = self
            .nonce_der
            .as_deref()
            .map(Extension::from_der)
            .transpose()
            .map_err(|e| bad("nonce", e))?;
        let status = match self.status {
            WireCertStatus::Good => CertStatus::Good,
            WireCertStatus::Unknown => CertStatus::Unknown,
            WireCertStatus::Revoked { revoked_at, reason } => CertStatus::Revoked {
                revoked_at,
                reason: reason
                    .map(CrlReason::try_from)
                    .transpose()
                    .map_err(|e| bad("CRLReason", e))?,
            },
        };
        let params = ResponseParams {
            cert_id: &cert_id,
            status,
            produced_at: self.produced_at,
            this_update: self.this_update,
            next_update: self.next_update,
            nonce: nonce.as_ref(),
        };
        issuer.sign_ocsp(&params).await
    }
}

/// The methods of `issuer`.
pub fn router(issuer: Arc<dyn CertificateIssuer>) -> RpcRouter {
    let (pre, fin, info, crl, ocsp) = (
        issuer.clone(),
        issuer.clone(),
        issuer.clone(),
        issuer.clone(),
        issuer.clone(),
    );
    RpcRouter::new(SERVICE)
        .unary("Issue", move |req: IssueRequest| {
            let issuer = issuer.clone();
            async move { issuer.issue(req).await }
        })
        .unary("IssuePrecertificate", move |req: IssueRequest| {
            let issuer = pre.clone();
            async move { issuer.issue_precertificate(req).await }
        })
        .unary("IssueFinal", move |r: IssueFinalRequest| {
            let issuer = fin.clone();
            async move { issuer.issue_final(r.req, &r.precert_der, &r.sct_list).await }
        })
        .unary("Info", move |(): ()| {
            let issuer = info.clone();
            async move {
                let identity = issuer.identity();
                let identities = issuer.identities();
                let chains = identities
                    .iter()
                    .map(|i| (i.issuer_id.clone(), issuer.chains(&i.issuer_id)))
                    .collect();
                IssuerInfo {
                    identity,
                    identities,
                    chains,
                }
            }
        })
        .unary("SignCrl", move |r: SignCrlRequest| {
            let issuer = crl.clone();
            async move {
                let entries: Vec<CrlEntry> = r
                    .entries
                    .into_iter()
                    .map(|(serial, revoked_at, reason)| CrlEntry {
                        serial,
                        revoked_at,
                        reason,
                    })
                    .collect();
                let req = CrlRequest {
                    issuer_id: &r.issuer_id,
                    shard: r.shard,
                    number: r.number,
                    this_update: r.this_update,
                    next_update: r.next_update,
                    entries: &entries,
                };
                issuer.sign_crl(&req).await
            }
        })
        .unary("SignOcsp", move |r: SignOcspRequest| {
            let issuer = ocsp.clone();
            async move { r.sign(&*issuer).await }
        })
}

/// An issuer in another process.
#[derive(Debug, Clone)]
pub struct RemoteIssuer {
    client: RpcClient,
    info: Arc<IssuerInfo>,
}

impl RemoteIssuer {
    /// A client of the issuer at `config.url`, after asking it who it is (so this fails when
    /// the issuer does not answer).
    pub async fn connect(config: &RpcClientConfig) -> Result<Self, RpcError> {
        let client = RpcClient::new(SERVICE, config)?;
        let info: IssuerInfo = client.call("Info", ()).await?;
        Ok(Self {
            client,
            info: Arc::new(info),
        })
    }

    async fn call<Req, Resp>(&self, method: &'static str, req: Req) -> Result<Resp, IssuerError>
    where
        Req: Serialize + Clone + Send + Sync + 'static,
        Resp: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        match self
            .client
            .call::<_, Result<Resp, IssuerError>>(method, req)
            .await
        {
            Ok(result) => result,
            Err(e) => {
                tracing::warn!(method, error = %e, "issuer call failed");
                Err(IssuerError::Unavailable(e.to_string()))
            }
        }
    }
}

#[async_trait]
impl CertificateIssuer for RemoteIssuer {
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        self.call("Issue", req).await
    }

    async fn issue_precertificate(
        &self,
        req: IssueRequest,
    ) -> Result<IssuedCertificate, IssuerError> {
        self.call("IssuePrecertificate", req).await
    }

    async fn issue_final(
        &self,
        req: IssueRequest,
        precert_der: &[u8],
        sct_list: &[u8],
    ) -> Result<IssuedCertificate, IssuerError> {
        let req = IssueFinalRequest {
            req,
            precert_der: precert_der.to_vec(),
            sct_list: sct_list.to_vec(),
        };
        self.call("IssueFinal", req).await
    }

    fn chains(&self, issuer_id: &str) -> Vec<String> {
        self.info.chains.get(issuer_id).cloned().unwrap_or_default()
    }

    fn identity(&self) -> IssuerIdentity {
        self.info.identity.clone()
    }

    fn identities(&self) -> Vec<IssuerIdentity> {
        if self.info.identities.is_empty() {
            vec![self.info.identity.clone()]
        } else {
            self.info.identities.clone()
        }
    }

    async fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError> {
        let req = SignCrlRequest {
            issuer_id: req.issuer_id.to_owned(),
            shard: req.shard,
            number: req.number,
            this_update: req.this_update,
            next_update: req.next_update,
            entries: req
                .entries
                .iter()
                .map(|e| (e.serial.clone(), e.revoked_at, e.reason))
                .collect(),
        };
        self.call("SignCrl", req).await
    }

    async fn sign_ocsp(&self, params: &ResponseParams<'_>) -> Result<Vec<u8>, IssuerError> {
        self.call("SignOcsp", SignOcspRequest::new(params)?).await
    }
}
