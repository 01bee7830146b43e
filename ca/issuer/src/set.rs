//! Several issuing intermediates at once (an ECDSA and an RSA chain, or an old and a new
//! intermediate during a rotation), behind the one [`CertificateIssuer`] the RA talks to.
//!
//! New certificates go to an *active* issuer chosen by the certificate key's algorithm: an RSA
//! key to an issuer with an RSA key, an ECDSA key to an ECDSA issuer, else to the first active
//! issuer (every issuer may sign every key type the CA accepts). A *retired* issuer signs no new
//! certificate but keeps signing the CRL shards of and OCSP responses about the certificates it
//! issued, until the last of them expires and it can be removed from the configuration.

use crate::{
    CertificateIssuer, CrlRequest, IssueRequest, IssuedCertificate, IssuerError, IssuerIdentity,
    KeyAlgorithm, LocalIssuer,
};
use async_trait::async_trait;
use cairn_ocsp::ResponseParams;

/// One issuer of an [`IssuerSet`].
#[derive(Debug)]
struct Member {
    issuer: LocalIssuer,
    retired: bool,
}

/// Several [`LocalIssuer`]s served as one. The first active issuer is the default: its
/// [`CertificateIssuer::identity`] is what a caller that knows of only one issuer sees.
#[derive(Debug)]
pub struct IssuerSet {
    members: Vec<Member>,
}

impl IssuerSet {
    /// A set holding `issuer`, active.
    pub fn new(issuer: LocalIssuer) -> IssuerSet {
        IssuerSet {
            members: vec![Member {
                issuer,
                retired: false,
            }],
        }
    }

    /// Adds `issuer`, retired (signs only CRLs and OCSP responses) or not. Refuses an issuer
    /// whose ID is already in the set.
    pub fn with_issuer(mut self, issuer: LocalIssuer, retired: bool) -> Result<Self, IssuerError> {
        if self.get(issuer.issuer_id()).is_some() {
            return Err(IssuerError::Inconsistent(format!(
                "issuer {} is configured twice",
                issuer.issuer_id()
            )));
        }
        self.members.push(Member { issuer, retired });
        Ok(self)
    }

    /// Marks issuer `issuer_id` retired: it issues nothing new. Refuses an unknown ID and
    /// retiring the last active issuer.
    pub fn retire(mut self, issuer_id: &str) -> Result<Self, IssuerError> {
        let Some(index) = self
            .members
            .iter()
            .position(|m| m.issuer.issuer_id() == issuer_id)
        else {
            return Err(IssuerError::InvalidRequest(format!(
                "no issuer {issuer_id} to retire"
            )));
        };
        self.members[index].retired = true;
        if self.members.iter().all(|m| m.retired) {
            return Err(IssuerError::Inconsistent(
                "every issuer is retired; at least one must take new issuance".into(),
            ));
        }
        Ok(self)
    }

    /// The issuer with ID `issuer_id`, active or retired.
    pub fn get(&self, issuer_id: &str) -> Option<&LocalIssuer> {
        self.members
            .iter()
            .map(|m| &m.issuer)
            .find(|i| i.issuer_id() == issuer_id)
    }

    /// Whether issuer `issuer_id` is retired (`None`: no such issuer).
    pub fn is_retired(&self, issuer_id: &str) -> Option<bool> {
        self.members
            .iter()
            .find(|m| m.issuer.issuer_id() == issuer_id)
            .map(|m| m.retired)
    }

    /// Every issuer, in configuration order.
    pub fn issuers(&self) -> impl Iterator<Item = &LocalIssuer> {
        self.members.iter().map(|m| &m.issuer)
    }

    /// The active issuer that signs a new certificate for the key `spki_der`: the first active
    /// one of the same key family (RSA or ECDSA), else the first active one.
    pub fn select(&self, spki_der: &[u8]) -> Result<&LocalIssuer, IssuerError> {
        let wants_rsa = KeyAlgorithm::from_spki_der(spki_der)
            .map_err(|e| IssuerError::InvalidRequest(format!("certificate key: {e}")))?
            .is_rsa();
        let mut active = self.members.iter().filter(|m| !m.retired);
        let first = active.clone().next().ok_or_else(|| {
            IssuerError::Inconsistent("no active issuer takes new issuance".into())
        })?;
        let same_family = active.find(|m| {
            m.issuer
                .hierarchy()
                .intermediate()
                .key()
                .algorithm()
                .is_rsa()
                == wants_rsa
        });
        Ok(&same_family.unwrap_or(first).issuer)
    }

    /// The default issuer: the first active one.
    fn default_issuer(&self) -> &LocalIssuer {
        let member = self.members.iter().find(|m| !m.retired);
        &member.unwrap_or(&self.members[0]).issuer
    }
}

#[async_trait]
impl CertificateIssuer for IssuerSet {
    async fn issue(&self, req: IssueRequest) -> Result<IssuedCertificate, IssuerError> {
        self.select(&req.spki_der)?.issue(req).await
    }

    async fn issue_precertificate(
        &self,
        req: IssueRequest,
    ) -> Result<IssuedCertificate, IssuerError> {
        self.select(&req.spki_der)?.issue_precertificate(req).await
    }

    /// Signed by the issuer of `precert_der` (even if it was retired since), so the final
    /// certificate matches the precertificate logged in CT.
    async fn issue_final(
        &self,
        req: IssueRequest,
        precert_der: &[u8],
        sct_list: &[u8],
    ) -> Result<IssuedCertificate, IssuerError> {
        let issuer = self
            .issuers()
            .find(|i| {
                cairn_x509::is_signed_by(precert_der, i.hierarchy().intermediate().key().spki_der())
            })
            .ok_or_else(|| {
                IssuerError::InvalidRequest(
                    "the precertificate was not signed by any configured issuer".into(),
                )
            })?;
        issuer.issue_final(req, precert_der, sct_list).await
    }

    fn chains(&self, issuer_id: &str) -> Vec<String> {
        self.get(issuer_id)
            .map(|i| i.chains(issuer_id))
            .unwrap_or_default()
    }

    fn identity(&self) -> IssuerIdentity {
        self.default_issuer().identity()
    }

    fn identities(&self) -> Vec<IssuerIdentity> {
        self.issuers().map(CertificateIssuer::identity).collect()
    }

    /// By the issuer `req.issuer_id` names, or, for a root's CRL, the first issuer under that
    /// root.
    async fn sign_crl(&self, req: &CrlRequest<'_>) -> Result<Vec<u8>, IssuerError> {
        let issuer = self
            .get(req.issuer_id)
            .or_else(|| {
                self.issuers()
                    .find(|i| i.hierarchy().root_id() == req.issuer_id)
            })
            .ok_or_else(|| {
                IssuerError::InvalidRequest(format!(
                    "no CRL {} of issuer {}",
                    req.shard, req.issuer_id
                ))
            })?;
        CertificateIssuer::sign_crl(issuer, req).await
    }

    /// By the issuer the CertID names.
    async fn sign_ocsp(&self, params: &ResponseParams<'_>) -> Result<Vec<u8>, IssuerError> {
        let issuer = self
            .issuers()
            .find(|i| i.issuer_hashes().matches(params.cert_id))
            .ok_or_else(|| {
                IssuerError::InvalidRequest("the OCSP CertID names no configured issuer".into())
            })?;
        CertificateIssuer::sign_ocsp(issuer, params).await
    }
}
