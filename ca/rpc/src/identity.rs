//! Which clients a service answers: the DNS names in the client certificate's subjectAltName
//! (the deployment's internal CA gives each service one, `ra.cairn.internal` say), checked
//! against the service's allow-list before any method runs. A client outside the list gets
//! `PERMISSION_DENIED` and the refusal is logged with the names it presented.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cairn_listen::PeerCertificates;
use der::Decode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The client identities one service accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowedClients(pub Vec<String>);

impl AllowedClients {
    /// Whether any of `names` is on the list (ASCII case-insensitive).
    pub fn allows(&self, names: &[String]) -> bool {
        names
            .iter()
            .any(|n| self.0.iter().any(|a| a.eq_ignore_ascii_case(n)))
    }
}

/// The identity a request was accepted under, for handlers that log or authorize further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity(pub String);

/// The DNS names in a certificate's subjectAltName; empty when it has none or does not decode.
pub fn dns_names(cert_der: &[u8]) -> Vec<String> {
    let Ok(cert) = Certificate::from_der(cert_der) else {
        return Vec::new();
    };
    let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|name| match name {
            GeneralName::DnsName(dns) => Some(dns.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn denied(message: String) -> Response {
    tonic::Status::permission_denied(message)
        .into_http::<tonic::body::Body>()
        .map(axum::body::Body::new)
}

/// Axum middleware: passes the request on only when the TLS client certificate names an allowed
/// identity.
pub(crate) async fn check(
    State(allowed): State<Arc<(&'static str, AllowedClients)>>,
    mut req: Request,
    next: Next,
) -> Response {
    let (service, allowed) = (&allowed.0, &allowed.1);
    let names = req
        .extensions()
        .get::<PeerCertificates>()
        .and_then(|chain| chain.0.first().map(|leaf| dns_names(leaf.as_ref())))
        .unwrap_or_default();
    if names.is_empty() {
        tracing::warn!(
            service,
            "gRPC call without a client certificate naming a DNS identity; refused"
        );
        return denied(format!(
            "{service}: a client certificate with a DNS name is required"
        ));
    }
    if !allowed.allows(&names) {
        tracing::warn!(service, client = ?names, "gRPC client identity not allowed; refused");
        return denied(format!("{service}: client identity not allowed"));
    }
    let identity = names
        .into_iter()
        .find(|n| allowed.allows(std::slice::from_ref(n)));
    if let Some(identity) = identity {
        req.extensions_mut().insert(ClientIdentity(identity));
    }
    next.run(req).await
}
