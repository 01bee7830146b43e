//! Rules for TLS server subscriber certificates and precertificates (BR §7.1.2.7, RFC 6962).

use crate::catalog as lints;
use crate::certificate::{
    Cert, OID_CT_POISON, describe_general_name, directory_string, is_http_uri, require,
    unix_seconds,
};
use crate::{BR_MAX_SUBSCRIBER_VALIDITY, Findings};
use const_oid::db::rfc4519::{COMMON_NAME, COUNTRY_NAME};
use const_oid::db::rfc5280::{
    ANY_EXTENDED_KEY_USAGE, ID_KP_CLIENT_AUTH, ID_KP_CODE_SIGNING, ID_KP_EMAIL_PROTECTION,
    ID_KP_OCSP_SIGNING, ID_KP_SERVER_AUTH, ID_KP_TIME_STAMPING,
};
use der::asn1::ObjectIdentifier;
use std::net::IpAddr;
use std::time::Duration;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

/// CA/Browser Forum domain-validated policy.
const OID_DOMAIN_VALIDATED: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.140.1.2.1");

/// Runs every subscriber rule; `precert` adds the RFC 6962 poison rules (and drops the rule
/// that forbids the poison).
pub(crate) fn check(
    cert: &Cert<'_>,
    profile_validity: Duration,
    max_validity: Duration,
    precert: bool,
    findings: &mut Findings<'_>,
) {
    check_lifetime(cert, profile_validity, max_validity, findings);
    let san = check_san(cert, findings);
    check_subject(cert, san.as_deref(), findings);
    check_basic_constraints(cert, findings);
    check_key_usage(cert, findings);
    check_eku(cert, findings);
    check_aki(cert, findings);
    if cert.exts.ski.present().is_some() {
        findings.report(
            lints::SUB_CERT_SUBJECT_KEY_IDENTIFIER_PRESENT,
            "subjectKeyIdentifier is present (NOT RECOMMENDED by the BRs, SHOULD by RFC 5280)",
        );
    }
    let dv = cert.exts.policies.present().is_some_and(|(_, p)| {
        p.0.iter()
            .any(|pi| pi.policy_identifier == OID_DOMAIN_VALIDATED)
    });
    if !dv {
        findings.report(
            lints::SUB_CERT_CERTIFICATE_POLICIES_DV_MISSING,
            "certificatePolicies does not contain 2.23.140.1.2.1",
        );
    }
    check_urls(cert, findings);
    check_poison(cert, precert, findings);
}

/// Lifetime = notAfter − notBefore + 1 s (BR §6.3.2 counts both ends). Only the tightest broken
/// limit is reported: 398 days, then the configured maximum, then the profile.
fn check_lifetime(
    cert: &Cert<'_>,
    profile_validity: Duration,
    max_validity: Duration,
    findings: &mut Findings<'_>,
) {
    let v = &cert.tbs.validity;
    let (nb, na) = (unix_seconds(&v.not_before), unix_seconds(&v.not_after));
    if na < nb {
        return; // e_validity_time_not_positive already said it.
    }
    let lifetime = na - nb + 1;
    let days = |secs: u64| format!("{secs} s ({:.2} days)", secs as f64 / 86_400.0);
    if lifetime > BR_MAX_SUBSCRIBER_VALIDITY.as_secs() {
        findings.report(
            lints::TLS_SERVER_CERT_VALID_TIME_LONGER_THAN_398_DAYS,
            format!("lifetime is {}", days(lifetime)),
        );
    } else if lifetime > max_validity.as_secs() {
        findings.report(
            lints::VALIDITY_LONGER_THAN_MAX,
            format!(
                "lifetime is {}, the maximum is {}",
                days(lifetime),
                days(max_validity.as_secs())
            ),
        );
    } else if lifetime > profile_validity.as_secs() {
        findings.report(
            lints::VALIDITY_LONGER_THAN_PROFILE,
            format!(
                "lifetime is {}, the profile allows {}",
                days(lifetime),
                days(profile_validity.as_secs())
            ),
        );
    }
}

/// A SAN entry the subject's commonName may repeat.
enum SanEntry {
    Dns(String),
    Ip(IpAddr),
}

/// SAN rules; returns the dNSName/iPAddress entries when the extension decoded.
fn check_san(cert: &Cert<'_>, findings: &mut Findings<'_>) -> Option<Vec<SanEntry>> {
    let (critical, san) = require(
        &cert.exts.san,
        lints::EXT_SAN_MISSING,
        "no subjectAltName extension",
        findings,
    )?;
    if san.0.is_empty() {
        findings.report(lints::EXT_SAN_NO_ENTRIES, "subjectAltName is empty");
    }
    let subject_empty = cert.tbs.subject.is_empty();
    if subject_empty && !critical {
        findings.report(
            lints::EXT_SAN_NOT_CRITICAL_WITHOUT_SUBJECT,
            "the subject is empty but subjectAltName is not critical",
        );
    }
    if !subject_empty && critical {
        findings.report(
            lints::EXT_SAN_CRITICAL_WITH_SUBJECT_DN,
            "the subject is not empty but subjectAltName is critical",
        );
    }
    let mut entries = Vec::new();
    for name in &san.0 {
        match name {
            GeneralName::DnsName(dns) => {
                for (lint, detail) in crate::dns_name::problems(dns.as_str()) {
                    findings.report(lint, detail);
                }
                entries.push(SanEntry::Dns(dns.as_str().to_string()));
            }
            GeneralName::IpAddress(octets) => {
                let bytes = octets.as_bytes();
                let ip = if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                    IpAddr::from(v4)
                } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                    IpAddr::from(v6)
                } else {
                    findings.report(
                        lints::SAN_IP_ADDRESS_INVALID_LENGTH,
                        format!("iPAddress of {} octets", bytes.len()),
                    );
                    continue;
                };
                if is_reserved(ip) {
                    findings.report(
                        lints::EXT_SAN_CONTAINS_RESERVED_IP,
                        format!("{ip} is a reserved address"),
                    );
                }
                entries.push(SanEntry::Ip(ip));
            }
            other => findings.report(
                lints::EXT_SAN_UNSUPPORTED_NAME_TYPE,
                format!("{} in subjectAltName", describe_general_name(other)),
            ),
        }
    }
    Some(entries)
}

/// IANA special-purpose ranges that are not globally reachable, multicast and reserved space.
fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
                || (s[0] == 0x2001 && s[1] < 0x0200)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

fn check_subject(cert: &Cert<'_>, san: Option<&[SanEntry]>, findings: &mut Findings<'_>) {
    for atv in cert.tbs.subject.iter() {
        if atv.oid == COUNTRY_NAME {
            continue;
        }
        if atv.oid != COMMON_NAME {
            findings.report(
                lints::DV_SUBJECT_CONTAINS_DISALLOWED_ATTRIBUTE,
                format!(
                    "subject attribute {} in a domain-validated certificate",
                    atv.oid
                ),
            );
            continue;
        }
        let Some(cn) = directory_string(&atv.value) else {
            findings.report(
                lints::SUBJECT_COMMON_NAME_NOT_FROM_SAN,
                "the commonName is not a UTF8String, PrintableString or IA5String",
            );
            continue;
        };
        if cn.chars().count() > 64 {
            findings.report(
                lints::SUBJECT_COMMON_NAME_MAX_LENGTH,
                format!("commonName is {} characters", cn.chars().count()),
            );
        }
        // Without a readable SAN, e_ext_san_missing (or a malformed-value finding) says enough.
        let Some(san) = san else { continue };
        let listed = san.iter().any(|entry| match entry {
            SanEntry::Dns(d) => d.eq_ignore_ascii_case(&cn),
            // An IP commonName must be the canonical text of a SAN address.
            SanEntry::Ip(ip) => ip.to_string() == cn,
        });
        if !listed {
            findings.report(
                lints::SUBJECT_COMMON_NAME_NOT_FROM_SAN,
                format!("commonName {cn:?} is not a subjectAltName entry"),
            );
        }
    }
}

fn check_basic_constraints(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let Some((critical, bc)) = cert.exts.basic_constraints.present() else {
        return;
    };
    if !critical {
        findings.report(
            lints::SUB_CERT_BASIC_CONSTRAINTS_NOT_CRITICAL,
            "basicConstraints is not critical",
        );
    }
    if bc.ca {
        findings.report(lints::SUB_CERT_BASIC_CONSTRAINTS_CA_TRUE, "cA is true");
    }
    if let Some(len) = bc.path_len_constraint {
        findings.report(
            lints::SUB_CERT_BASIC_CONSTRAINTS_PATH_LEN_PRESENT,
            format!("pathLenConstraint {len} is present"),
        );
    }
}

fn check_key_usage(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let Some((critical, ku)) = require(
        &cert.exts.key_usage,
        lints::SUB_CERT_KEY_USAGE_MISSING,
        "no keyUsage extension",
        findings,
    ) else {
        return;
    };
    if !critical {
        findings.report(
            lints::SUB_CERT_KEY_USAGE_NOT_CRITICAL,
            "keyUsage is not critical",
        );
    }
    let bits = ku.0;
    if !bits.contains(KeyUsages::DigitalSignature) {
        findings.report(
            lints::SUB_CERT_KEY_USAGE_MISSING_DIGITAL_SIGNATURE,
            "digitalSignature is not set",
        );
    }
    if bits.contains(KeyUsages::KeyCertSign) {
        findings.report(
            lints::SUB_CERT_KEY_USAGE_CERT_SIGN_BIT_SET,
            "keyCertSign is set",
        );
    }
    if bits.contains(KeyUsages::CRLSign) {
        findings.report(lints::SUB_CERT_KEY_USAGE_CRL_SIGN_BIT_SET, "cRLSign is set");
    }
    if bits.contains(KeyUsages::KeyEncipherment) && !cert.rsa_key {
        findings.report(
            lints::SUB_CERT_KEY_USAGE_KEY_ENCIPHERMENT_NOT_RSA,
            "keyEncipherment is set for a non-RSA key",
        );
    }
    let mut allowed = KeyUsages::DigitalSignature
        | KeyUsages::KeyEncipherment
        | KeyUsages::KeyCertSign
        | KeyUsages::CRLSign;
    if !cert.rsa_key {
        allowed |= KeyUsages::KeyAgreement;
    }
    let unexpected = bits & !allowed;
    if !unexpected.is_empty() {
        findings.report(
            lints::SUB_CERT_KEY_USAGE_UNEXPECTED_BIT,
            format!("unexpected keyUsage bits {unexpected:?}"),
        );
    }
}

fn check_eku(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let Some((_, eku)) = require(
        &cert.exts.eku,
        lints::SUB_CERT_EKU_MISSING,
        "no extKeyUsage extension",
        findings,
    ) else {
        return;
    };
    if !eku.0.contains(&ID_KP_SERVER_AUTH) {
        findings.report(
            lints::SUB_CERT_EKU_SERVER_AUTH_MISSING,
            "extKeyUsage has no id-kp-serverAuth",
        );
    }
    for oid in &eku.0 {
        if *oid == ANY_EXTENDED_KEY_USAGE {
            findings.report(
                lints::SUB_CERT_EKU_ANY_PRESENT,
                "extKeyUsage has anyExtendedKeyUsage",
            );
        } else if [
            ID_KP_CODE_SIGNING,
            ID_KP_EMAIL_PROTECTION,
            ID_KP_TIME_STAMPING,
            ID_KP_OCSP_SIGNING,
        ]
        .contains(oid)
        {
            findings.report(
                lints::SUB_CERT_EKU_PROHIBITED_VALUE,
                format!("extKeyUsage has {oid}"),
            );
        } else if *oid == ID_KP_CLIENT_AUTH {
            findings.report(
                lints::SUB_CERT_EKU_CLIENT_AUTH_PRESENT,
                "extKeyUsage has id-kp-clientAuth",
            );
        } else if *oid != ID_KP_SERVER_AUTH {
            findings.report(
                lints::SUB_CERT_EKU_EXTRA_VALUES,
                format!("extKeyUsage has {oid}"),
            );
        }
    }
}

/// AKI rules shared with intermediates.
pub(crate) fn check_aki(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let Some((_, aki)) = require(
        &cert.exts.aki,
        lints::EXT_AUTHORITY_KEY_IDENTIFIER_MISSING,
        "no authorityKeyIdentifier extension",
        findings,
    ) else {
        return;
    };
    if aki.key_identifier.is_none() {
        findings.report(
            lints::EXT_AUTHORITY_KEY_IDENTIFIER_NO_KEY_IDENTIFIER,
            "authorityKeyIdentifier has no keyIdentifier",
        );
    }
    if aki.authority_cert_issuer.is_some() || aki.authority_cert_serial_number.is_some() {
        findings.report(
            lints::EXT_AUTHORITY_KEY_IDENTIFIER_HAS_ISSUER_CERT,
            "authorityKeyIdentifier has authorityCertIssuer or authorityCertSerialNumber",
        );
    }
}

pub(crate) fn check_urls(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    if let Some((_, dps)) = cert.exts.crl_dp.present() {
        for dp in &dps.0 {
            if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                for name in names.iter().filter(|n| !is_http_uri(n)) {
                    findings.report(
                        lints::EXT_CRL_DISTRIBUTION_POINT_NOT_HTTP,
                        format!("CRL distribution point {}", describe_general_name(name)),
                    );
                }
            }
        }
    }
    if let Some((_, aia)) = cert.exts.aia.present() {
        for ad in aia.0.iter().filter(|ad| !is_http_uri(&ad.access_location)) {
            findings.report(
                lints::EXT_AIA_URI_NOT_HTTP,
                format!(
                    "authorityInfoAccess {} location {}",
                    ad.access_method,
                    describe_general_name(&ad.access_location)
                ),
            );
        }
    }
}

fn check_poison(cert: &Cert<'_>, precert: bool, findings: &mut Findings<'_>) {
    let poison = cert.exts.raw(OID_CT_POISON);
    match (precert, poison) {
        (true, None) => findings.report(
            lints::PRECERT_POISON_MISSING,
            "no precertificate poison extension",
        ),
        (true, Some(ext)) => {
            if !ext.critical {
                findings.report(
                    lints::PRECERT_POISON_NOT_CRITICAL,
                    "the poison extension is not critical",
                );
            }
            if ext.extn_value.as_bytes() != [0x05, 0x00] {
                findings.report(
                    lints::PRECERT_POISON_VALUE_NOT_NULL,
                    "the poison extension's value is not ASN.1 NULL",
                );
            }
        }
        (false, Some(_)) => findings.report(
            lints::POISON_IN_NON_PRECERTIFICATE,
            "a final certificate carries the precertificate poison",
        ),
        (false, None) => {}
    }
}
