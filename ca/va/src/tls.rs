//! TLS client configuration for validation: any certificate is accepted (RFC 8555 §8.3 and
//! RFC 8737 do not rely on the Web PKI), but handshake signatures are still verified. The peer
//! certificate is read tolerantly ([`crate::challenge_cert`]): a challenge certificate with
//! zero validity dates must not fail the handshake.

use crate::challenge_cert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// Accepts any server certificate; proves only that the peer holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Not `rustls::crypto::verify_tls12_signature`: it parses the certificate with webpki,
        // which refuses the critical acmeIdentifier extension of every challenge certificate.
        let (alg_id, key) = spki_parts(cert)?;
        let candidates = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        let verified = candidates
            .iter()
            .filter(|alg| alg.public_key_alg_id().as_ref() == alg_id.as_slice())
            .any(|alg| alg.verify_signature(&key, message, dss.signature()).is_ok());
        if verified {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let spki = challenge_cert::parse(cert.as_ref())
            .map_err(|_| bad_cert())?
            .spki_der;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.algs,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn bad_cert() -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
}

/// The certificate's public key algorithm identifier (contents of the SEQUENCE, as webpki
/// algorithms name theirs) and the raw public key bits.
fn spki_parts(cert: &CertificateDer<'_>) -> Result<(Vec<u8>, Vec<u8>), rustls::Error> {
    let c = challenge_cert::parse(cert.as_ref()).map_err(|_| bad_cert())?;
    Ok((c.spki_alg_id, c.public_key))
}

/// A client configuration that offers exactly `alpn` and accepts any certificate.
pub(crate) fn client_config(alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider: CryptoProvider = aws_lc_rs::default_provider();
    let verifier = Arc::new(AcceptAnyCert {
        algs: provider.signature_verification_algorithms,
    });
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // RFC 8737 §3: no session resumption for validation connections.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}
