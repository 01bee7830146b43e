//! Certificate download with alternate chains (RFC 8555 §7.4.2) and revocation (§7.6).

use crate::auth::KeyMode;
use crate::response::{AcmeResponse, AcmeResult};
use crate::{WfeState, paths};
use axum::extract::{Path, Request};
use cairn_acme::messages::Revocation;
use cairn_api::RevocationRequester;
use cairn_core::{Problem, Serial};

pub(crate) async fn certificate(
    state: WfeState,
    Path(serial): Path<String>,
    req: Request,
) -> AcmeResult {
    serve_chain(state, serial, 0, req).await
}

pub(crate) async fn certificate_alternate(
    state: WfeState,
    Path((serial, alt)): Path<(String, String)>,
    req: Request,
) -> AcmeResult {
    let n: usize = alt
        .parse()
        .map_err(|_| Problem::not_found("no such alternate chain"))?;
    serve_chain(state, serial, n, req).await
}

async fn serve_chain(state: WfeState, serial: String, alt: usize, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let path = if alt == 0 {
        format!("{}{serial}", paths::CERT)
    } else {
        format!("{}{serial}/{alt}", paths::CERT)
    };
    let auth = wfe.authenticate(req, &path, KeyMode::Kid).await?;
    if !auth.jws.is_post_as_get() {
        return Err(Problem::malformed("a certificate is fetched with POST-as-GET").into());
    }
    let account = auth.account()?;
    let cert = wfe.ra.get_certificate(&Serial(serial.clone())).await?;
    if cert.account_id != account.id {
        return Err(Problem::not_found("certificate not found").into());
    }
    let chains = wfe.ra.chains(&cert.issuer_id);
    let Some(chain) = chains.get(alt) else {
        return Err(Problem::not_found("no such alternate chain").into());
    };
    let mut pem = cairn_x509::pem_encode("CERTIFICATE", &cert.der);
    pem.push_str(chain);
    let mut resp = AcmeResponse::bytes("application/pem-certificate-chain", pem.into_bytes());
    for i in (0..chains.len()).filter(|i| *i != alt) {
        let url = if i == 0 {
            format!("{}{}{serial}", auth.base, paths::CERT)
        } else {
            format!("{}{}{serial}/{i}", auth.base, paths::CERT)
        };
        resp = resp.link(&url, "alternate");
    }
    Ok(resp)
}

pub(crate) async fn revoke(state: WfeState, req: Request) -> AcmeResult {
    let wfe = &state.0;
    let auth = wfe
        .authenticate(req, paths::REVOKE, KeyMode::Either)
        .await?;
    let body: Revocation = auth.jws.payload_json()?;
    let der = body.decode_certificate()?;
    let requester = match (&auth.account, &auth.jwk) {
        (Some(account), _) => RevocationRequester::Account(account.clone()),
        (None, Some(jwk)) => RevocationRequester::CertificateKey(jwk.thumbprint()),
        (None, None) => return Err(Problem::malformed("the request names no key").into()),
    };
    wfe.ra.revoke(requester, &der, body.reason).await?;
    Ok(AcmeResponse::empty())
}
