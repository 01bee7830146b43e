//! CRL basics: a good sharded CRL is clean and each broken one draws exactly its lint.
#![allow(clippy::unwrap_used)] // fixtures outside #[test] fns: a panic is a failure with a location

use cairn_lint::{CrlContext, lint_crl};
use cairn_x509::{KeyAlgorithm, SigningKey};
use const_oid::AssociatedOid;
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString, UtcTime};
use der::{Decode, Encode};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::Version;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlReason};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

const NOW: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

fn utc(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    }
}

fn idp(url: &str) -> IssuingDistributionPoint {
    IssuingDistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(Ia5String::new(url).unwrap()),
        ])),
        only_contains_user_certs: true,
        only_contains_ca_certs: false,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    }
}

fn entry(reason: Option<CrlReason>) -> RevokedCert {
    RevokedCert {
        serial_number: SerialNumber::new(&[0x01; 18]).unwrap(),
        revocation_date: utc(NOW - DAY),
        crl_entry_extensions: reason.map(|r| vec![ext(CrlReason::OID, false, &r)]),
    }
}

/// A good shard: v2, 7 days, one keyCompromise entry, AKI, CRL number, critical IDP.
fn good_tbs(key: &SigningKey) -> TbsCertList {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(vec![0xab; 20]).unwrap()),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    TbsCertList {
        version: Version::V2,
        signature: key.signature_algorithm(),
        issuer: Name::from_str("CN=Lint Intermediate,O=Cairn").unwrap(),
        this_update: utc(NOW),
        next_update: Some(utc(NOW + 7 * DAY)),
        revoked_certificates: Some(vec![entry(Some(CrlReason::KeyCompromise))]),
        crl_extensions: Some(vec![
            ext(ID_CE_AUTHORITY_KEY_IDENTIFIER, false, &aki),
            ext(
                ID_CE_CRL_NUMBER,
                false,
                &der::asn1::Uint::new(&[0x01, 0x02]).unwrap(),
            ),
            ext(
                ID_CE_ISSUING_DISTRIBUTION_POINT,
                true,
                &idp("http://crl.example.net/0.crl"),
            ),
        ]),
    }
}

fn sign(key: &SigningKey, tbs: TbsCertList) -> Vec<u8> {
    let sig = key.sign(&tbs.to_der().unwrap()).unwrap();
    CertificateList {
        signature_algorithm: tbs.signature.clone(),
        tbs_cert_list: tbs,
        signature: BitString::from_bytes(&sig).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn crl_with(key: &SigningKey, change: impl FnOnce(&mut TbsCertList)) -> Vec<u8> {
    let mut tbs = good_tbs(key);
    change(&mut tbs);
    sign(key, tbs)
}

fn exts(tbs: &mut TbsCertList) -> &mut Vec<Extension> {
    tbs.crl_extensions.as_mut().unwrap()
}

#[test]
fn crl_mistakes_are_named() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let sharded = CrlContext {
        sharded: true,
        ..CrlContext::default()
    };
    let remove =
        |oid: ObjectIdentifier| move |t: &mut TbsCertList| exts(t).retain(|e| e.extn_id != oid);
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("good", crl_with(&key, |_| {}), &[]),
        (
            "empty is fine without the list",
            crl_with(&key, |t| t.revoked_certificates = None),
            &[],
        ),
        (
            "v1",
            crl_with(&key, |t| t.version = Version::V1),
            &["e_crl_version_not_2"],
        ),
        (
            "no CRL number",
            crl_with(&key, remove(ID_CE_CRL_NUMBER)),
            &["e_crl_number_missing"],
        ),
        (
            "CRL number critical",
            crl_with(&key, |t| exts(t)[1].critical = true),
            &["e_crl_number_critical"],
        ),
        (
            "CRL number of 21 octets",
            crl_with(&key, |t| {
                exts(t)[1] = ext(
                    ID_CE_CRL_NUMBER,
                    false,
                    &der::asn1::Uint::new(&[0x7f; 21]).unwrap(),
                )
            }),
            &["e_crl_number_invalid"],
        ),
        (
            "no AKI",
            crl_with(&key, remove(ID_CE_AUTHORITY_KEY_IDENTIFIER)),
            &["e_crl_aki_missing"],
        ),
        (
            "11 days",
            crl_with(&key, |t| t.next_update = Some(utc(NOW + 11 * DAY))),
            &["e_crl_validity_too_long"],
        ),
        (
            "nextUpdate before thisUpdate",
            crl_with(&key, |t| t.next_update = Some(utc(NOW - DAY))),
            &["e_crl_next_update_not_after_this_update"],
        ),
        (
            "no nextUpdate",
            crl_with(&key, |t| t.next_update = None),
            &["e_crl_next_update_missing"],
        ),
        (
            "shard without IDP",
            crl_with(&key, remove(ID_CE_ISSUING_DISTRIBUTION_POINT)),
            &["e_crl_idp_missing"],
        ),
        (
            "IDP not critical",
            crl_with(&key, |t| exts(t)[2].critical = false),
            &["e_crl_idp_not_critical"],
        ),
        (
            "IDP over https",
            crl_with(&key, |t| {
                exts(t)[2] = ext(
                    ID_CE_ISSUING_DISTRIBUTION_POINT,
                    true,
                    &idp("https://crl.example.net/0.crl"),
                )
            }),
            &["e_crl_idp_uri_not_http"],
        ),
        (
            "empty revokedCertificates",
            crl_with(&key, |t| t.revoked_certificates = Some(vec![])),
            &["e_crl_empty_revoked_certificates"],
        ),
        (
            "reason unspecified",
            crl_with(&key, |t| {
                t.revoked_certificates = Some(vec![entry(Some(CrlReason::Unspecified))])
            }),
            &["e_crl_reason_code_not_allowed"],
        ),
        (
            "no reason is fine",
            crl_with(&key, |t| t.revoked_certificates = Some(vec![entry(None)])),
            &[],
        ),
        (
            "certificateHold",
            crl_with(&key, |t| {
                t.revoked_certificates = Some(vec![entry(Some(CrlReason::CertificateHold))])
            }),
            &["e_crl_reason_code_not_allowed"],
        ),
        (
            "unknown critical CRL extension",
            crl_with(&key, |t| {
                exts(t).push(ext(
                    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.3"),
                    true,
                    &der::asn1::Null,
                ))
            }),
            &["e_unknown_critical_extension"],
        ),
        ("garbage", b"not a crl".to_vec(), &["e_crl_malformed"]),
    ];
    for (what, der, expected) in cases {
        let report = lint_crl(&der, &sharded);
        assert_eq!(report.lint_names(), expected, "{what}: {report}");
    }
}

#[test]
fn an_unsharded_crl_needs_no_idp() {
    let key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let der = crl_with(&key, |t| {
        exts(t).retain(|e| e.extn_id != ID_CE_ISSUING_DISTRIBUTION_POINT)
    });
    assert!(lint_crl(&der, &CrlContext::default()).findings.is_empty());
    // And the good CRL round-trips through the strict x509-cert parser.
    <CertificateList>::from_der(&crl_with(&key, |_| {})).unwrap();
}
