//! Each deliberately broken certificate draws exactly the lint for what was broken. The bad
//! certificates are good cairn-x509 certificates whose TBSCertificate is decoded, changed and
//! re-signed with the issuer's aws-lc-rs key.
#![allow(clippy::unwrap_used)] // fixtures outside #[test] fns: a panic is a failure with a location

use cairn_core::Identifier;
use cairn_lint::{Kind, LintContext, LintReport, lint_certificate, lint_crl};
use cairn_x509::{
    CaCertificate, EndEntityParams, EndEntityProfile, KeyAlgorithm, SigningKey, build_end_entity,
    build_intermediate, build_root, random_serial,
};
use const_oid::AssociatedOid;
use const_oid::db::rfc5280::{
    ANY_EXTENDED_KEY_USAGE, ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS,
    ID_CE_CERTIFICATE_POLICIES, ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_EXT_KEY_USAGE,
    ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME, ID_CE_SUBJECT_KEY_IDENTIFIER, ID_KP_CLIENT_AUTH,
    ID_KP_SERVER_AUTH, ID_PE_AUTHORITY_INFO_ACCESS,
};
use der::asn1::{
    BitString, GeneralizedTime, Ia5String, Int, ObjectIdentifier, OctetString, UintRef, UtcTime,
};
use der::flagset::FlagSet;
use der::{Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, BasicConstraints, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName, crl::dp::DistributionPoint,
};
use x509_cert::name::Name;
use x509_cert::time::Time;

const DAY: u64 = 86_400;

/// `Certificate` with every field public, so tests can change anything.
#[derive(Clone, Sequence)]
struct Cert {
    tbs: Tbs,
    alg: AlgorithmIdentifierOwned,
    sig: BitString,
}

/// `TBSCertificate` with every field public.
#[derive(Clone, Sequence)]
struct Tbs {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<Int>,
    serial: Int,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_uid: Option<BitString>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_uid: Option<BitString>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Sequence)]
struct Validity {
    not_before: Time,
    not_after: Time,
}

impl Tbs {
    fn exts(&mut self) -> &mut Vec<Extension> {
        self.extensions.get_or_insert_with(Vec::new)
    }

    fn remove(&mut self, oid: ObjectIdentifier) {
        self.exts().retain(|e| e.extn_id != oid);
    }

    fn ext_mut(&mut self, oid: ObjectIdentifier) -> &mut Extension {
        self.exts().iter_mut().find(|e| e.extn_id == oid).unwrap()
    }

    /// Replaces (or adds) the extension of `value`'s type.
    fn put<T: Encode + AssociatedOid>(&mut self, critical: bool, value: &T) {
        self.put_raw(T::OID, critical, value.to_der().unwrap());
    }

    fn put_raw(&mut self, oid: ObjectIdentifier, critical: bool, value: Vec<u8>) {
        let ext = Extension {
            extn_id: oid,
            critical,
            extn_value: OctetString::new(value).unwrap(),
        };
        match self.exts().iter_mut().find(|e| e.extn_id == oid) {
            Some(slot) => *slot = ext,
            None => self.exts().push(ext),
        }
    }

    fn set_san(&mut self, critical: bool, names: Vec<GeneralName>) {
        self.put(critical, &SubjectAltName(names));
    }

    fn set_validity(&mut self, not_before: u64, not_after: u64) {
        self.validity = Validity {
            not_before: utc(not_before),
            not_after: utc(not_after),
        };
    }
}

fn utc(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

fn dns(name: &str) -> GeneralName {
    GeneralName::DnsName(Ia5String::new(name).unwrap())
}

fn uri(url: &str) -> GeneralName {
    GeneralName::UniformResourceIdentifier(Ia5String::new(url).unwrap())
}

fn ip(octets: &[u8]) -> GeneralName {
    GeneralName::IpAddress(OctetString::new(octets).unwrap())
}

/// A P-256 issuer and a good leaf: CN example.com, SAN example.com + www.example.com, 90 days,
/// CRL DP and AIA over http.
struct Fixture {
    root: CaCertificate,
    intermediate: CaCertificate,
    leaf: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let now = OffsetDateTime::now_utc();
        let root_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let root_der = build_root(
            &root_key,
            "Lint Root",
            Some("Cairn"),
            now,
            now + time::Duration::days(3650),
        )
        .unwrap();
        let root = CaCertificate::new(root_der, root_key).unwrap();
        let int_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let int_der = build_intermediate(
            &root,
            int_key.spki_der(),
            "Lint Intermediate",
            Some("Cairn"),
            now,
            now + time::Duration::days(1800),
        )
        .unwrap();
        let intermediate = CaCertificate::new(int_der, int_key).unwrap();
        let subject_key = SigningKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let leaf = build_end_entity(
            &intermediate,
            &EndEntityParams {
                serial: &random_serial(),
                spki_der: subject_key.spki_der(),
                identifiers: &[
                    Identifier::dns("example.com"),
                    Identifier::dns("www.example.com"),
                ],
                common_name: Some("example.com"),
                not_before: now,
                not_after: now + time::Duration::days(90) - time::Duration::seconds(1),
            },
            &EndEntityProfile {
                crl_url: Some("http://crl.example.net/1.crl".into()),
                issuer_url: Some("http://ca.example.net/int.der".into()),
                ..EndEntityProfile::default()
            },
        )
        .unwrap();
        Fixture {
            root,
            intermediate,
            leaf,
        }
    }

    /// The leaf with `change` applied to its TBS, re-signed by the intermediate.
    fn leaf_with(&self, change: impl FnOnce(&mut Tbs)) -> Vec<u8> {
        resign(&self.leaf, self.intermediate.key(), None, change)
    }

    fn intermediate_with(&self, change: impl FnOnce(&mut Tbs)) -> Vec<u8> {
        resign(self.intermediate.der(), self.root.key(), None, change)
    }

    fn root_with(&self, change: impl FnOnce(&mut Tbs)) -> Vec<u8> {
        resign(self.root.der(), self.root.key(), None, change)
    }
}

/// Decodes `der`, applies `change`, signs the new TBS with `key` and labels the signature with
/// `outer_alg` (or the TBS's own algorithm).
fn resign(
    der: &[u8],
    key: &SigningKey,
    outer_alg: Option<AlgorithmIdentifierOwned>,
    change: impl FnOnce(&mut Tbs),
) -> Vec<u8> {
    let mut cert = Cert::from_der(der).unwrap();
    change(&mut cert.tbs);
    let tbs_der = cert.tbs.to_der().unwrap();
    cert.sig = BitString::from_bytes(&key.sign(&tbs_der).unwrap()).unwrap();
    cert.alg = outer_alg.unwrap_or_else(|| cert.tbs.signature.clone());
    cert.to_der().unwrap()
}

fn leaf_ctx() -> LintContext {
    LintContext::new(Kind::TlsServerLeaf {
        profile_validity: Duration::from_secs(90 * DAY),
        max_validity: Duration::from_secs(100 * DAY),
    })
}

fn precert_ctx() -> LintContext {
    LintContext::new(Kind::Precertificate {
        profile_validity: Duration::from_secs(90 * DAY),
        max_validity: Duration::from_secs(100 * DAY),
    })
}

/// The findings other than the notice every cairn-x509 leaf draws (SKI present).
fn names(report: &LintReport) -> Vec<&'static str> {
    report
        .lint_names()
        .into_iter()
        .filter(|n| *n != "n_sub_cert_subject_key_identifier_present")
        .collect()
}

fn assert_leaf(what: &str, der: &[u8], expected: &[&str]) {
    let report = lint_certificate(der, &leaf_ctx());
    assert_eq!(names(&report), expected, "{what}: {report}");
}

fn ec_spki(curve: &str, point: Vec<u8>) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
            parameters: Some(der::Any::encode_from(&ObjectIdentifier::new_unwrap(curve)).unwrap()),
        },
        subject_public_key: BitString::from_bytes(&point).unwrap(),
    }
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    n: UintRef<'a>,
    e: UintRef<'a>,
}

fn rsa_spki(modulus_bits: usize, e: &[u8]) -> SubjectPublicKeyInfoOwned {
    let mut n = vec![0xc5u8; modulus_bits.div_ceil(8)];
    if !modulus_bits.is_multiple_of(8) {
        n[0] = 0xff >> (8 - modulus_bits % 8);
    }
    if let Some(last) = n.last_mut() {
        *last |= 1;
    }
    let key = RsaPublicKey {
        n: UintRef::new(&n).unwrap(),
        e: UintRef::new(e).unwrap(),
    }
    .to_der()
    .unwrap();
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(&key).unwrap(),
    }
}

#[test]
fn the_unmodified_fixture_is_clean() {
    let fx = Fixture::new();
    assert_leaf("fixture", &fx.leaf, &[]);
    // Re-signing without a change keeps it clean: the mutation machinery itself is neutral.
    assert_leaf("re-signed", &fx.leaf_with(|_| {}), &[]);
}

#[test]
fn subject_and_san_mistakes_are_named() {
    let fx = Fixture::new();
    let san = |names: Vec<GeneralName>| move |t: &mut Tbs| t.set_san(false, names);
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "CN not in SAN",
            fx.leaf_with(|t| t.subject = Name::from_str("CN=other.example.com").unwrap()),
            &["e_subject_common_name_not_from_san"],
        ),
        (
            "CN in another case is fine",
            fx.leaf_with(|t| t.subject = Name::from_str("CN=WWW.Example.COM").unwrap()),
            &[],
        ),
        (
            "organization in a DV subject",
            fx.leaf_with(|t| t.subject = Name::from_str("CN=example.com,O=Acme").unwrap()),
            &["e_dv_subject_contains_disallowed_attribute"],
        ),
        (
            "CN longer than 64",
            fx.leaf_with(|t| {
                let long = format!("{}.example.com", "a".repeat(60));
                t.subject = Name::from_str(&format!("CN={long}")).unwrap();
                t.set_san(false, vec![dns(&long)]);
            }),
            &["e_subject_common_name_max_length"],
        ),
        (
            "missing SAN",
            fx.leaf_with(|t| t.remove(ID_CE_SUBJECT_ALT_NAME)),
            &["e_ext_san_missing"],
        ),
        (
            "empty SAN",
            fx.leaf_with(|t| {
                t.subject = Name::default();
                t.set_san(true, vec![]);
            }),
            &["e_ext_san_no_entries"],
        ),
        (
            "SAN not critical with an empty subject",
            fx.leaf_with(|t| t.subject = Name::default()),
            &["e_ext_san_not_critical_without_subject"],
        ),
        (
            "SAN critical with a subject",
            fx.leaf_with(|t| t.ext_mut(ID_CE_SUBJECT_ALT_NAME).critical = true),
            &["e_ext_san_critical_with_subject_dn"],
        ),
        (
            "uppercase name",
            fx.leaf_with(san(vec![dns("example.com"), dns("WWW.example.com")])),
            &["e_dnsname_not_lowercase"],
        ),
        (
            "underscore",
            fx.leaf_with(san(vec![dns("example.com"), dns("a_b.example.com")])),
            &["e_dnsname_underscore"],
        ),
        (
            "trailing dot",
            fx.leaf_with(san(vec![dns("example.com"), dns("www.example.com.")])),
            &["e_dnsname_trailing_dot"],
        ),
        (
            "wildcard in the middle",
            fx.leaf_with(san(vec![dns("example.com"), dns("a.*.example.com")])),
            &["e_dnsname_wildcard_only_in_left_label"],
        ),
        (
            "partial wildcard",
            fx.leaf_with(san(vec![dns("example.com"), dns("w*.example.com")])),
            &["e_dnsname_left_label_wildcard_correct"],
        ),
        (
            "single-label name",
            fx.leaf_with(san(vec![dns("example.com"), dns("intranet")])),
            &["e_dnsname_not_fully_qualified"],
        ),
        (
            "URI in SAN",
            fx.leaf_with(san(vec![dns("example.com"), uri("http://example.com/")])),
            &["e_ext_san_unsupported_name_type"],
        ),
        (
            "5-octet IP",
            fx.leaf_with(san(vec![dns("example.com"), ip(&[1, 2, 3, 4, 5])])),
            &["e_san_ip_address_invalid_length"],
        ),
        (
            "private IP",
            fx.leaf_with(san(vec![dns("example.com"), ip(&[10, 0, 0, 1])])),
            &["e_ext_san_contains_reserved_ip"],
        ),
        (
            "public IPs are fine",
            fx.leaf_with(san(vec![
                dns("example.com"),
                ip(&[1, 1, 1, 1]),
                ip(&"2606:4700::1111"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()),
            ])),
            &[],
        ),
        (
            "SAN that does not decode",
            fx.leaf_with(|t| {
                t.put_raw(
                    ID_CE_SUBJECT_ALT_NAME,
                    false,
                    vec![0x30, 0x03, 0x82, 0x05, 0x41],
                )
            }),
            &["e_ext_value_malformed"],
        ),
    ];
    for (what, der, expected) in cases {
        assert_leaf(what, &der, expected);
    }
}

#[test]
fn ip_common_names_must_be_canonical_san_addresses() {
    let fx = Fixture::new();
    let with = |cn: &str| {
        let cn = cn.to_string();
        fx.leaf_with(move |t| {
            t.subject = Name::from_str(&format!("CN={cn}")).unwrap();
            t.set_san(
                false,
                vec![
                    ip(&[1, 1, 1, 1]),
                    ip(&[
                        0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11,
                    ]),
                ],
            );
        })
    };
    assert_leaf("v4", &with("1.1.1.1"), &[]);
    assert_leaf("v6 canonical", &with("2606:4700::1111"), &[]);
    assert_leaf(
        "v6 not canonical",
        &with("2606:4700:0::1111"),
        &["e_subject_common_name_not_from_san"],
    );
}

#[test]
fn serial_validity_and_algorithm_mistakes_are_named() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc().unix_timestamp() as u64;
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "short serial",
            fx.leaf_with(|t| t.serial = Int::new(&[0x01, 0x02, 0x03]).unwrap()),
            &["e_serial_number_low_entropy"],
        ),
        (
            "negative serial",
            fx.leaf_with(|t| t.serial = Int::new(&[0xff; 16]).unwrap()),
            &["e_serial_number_not_positive"],
        ),
        (
            "zero serial",
            fx.leaf_with(|t| t.serial = Int::new(&[0x00]).unwrap()),
            &["e_serial_number_not_positive"],
        ),
        (
            "21-octet serial",
            fx.leaf_with(|t| t.serial = Int::new(&[0x11; 21]).unwrap()),
            &["e_serial_number_longer_than_20_octets"],
        ),
        (
            "400-day validity",
            fx.leaf_with(|t| t.set_validity(now, now + 400 * DAY)),
            &["e_tls_server_cert_valid_time_longer_than_398_days"],
        ),
        (
            "over the configured maximum",
            fx.leaf_with(|t| t.set_validity(now, now + 120 * DAY)),
            &["e_validity_longer_than_max"],
        ),
        (
            "over the profile",
            fx.leaf_with(|t| t.set_validity(now, now + 95 * DAY)),
            &["e_validity_longer_than_profile"],
        ),
        (
            "notAfter before notBefore",
            fx.leaf_with(|t| t.set_validity(now, now - DAY)),
            &["e_validity_time_not_positive"],
        ),
        (
            "GeneralizedTime before 2050",
            fx.leaf_with(|t| {
                t.validity.not_after = Time::GeneralTime(
                    GeneralizedTime::from_unix_duration(Duration::from_secs(now + 30 * DAY))
                        .unwrap(),
                )
            }),
            &["e_wrong_time_format_pre2050"],
        ),
        (
            "version 1",
            fx.leaf_with(|t| t.version = None),
            &["e_invalid_certificate_version"],
        ),
        (
            "subjectUniqueID",
            fx.leaf_with(|t| t.subject_uid = Some(BitString::from_bytes(&[1, 2]).unwrap())),
            &["e_cert_contains_unique_identifier"],
        ),
        (
            "TBS algorithm differs from the outer one",
            resign(
                &fx.leaf,
                fx.intermediate.key(),
                Some(fx.intermediate.key().signature_algorithm()),
                |t| {
                    t.signature.oid = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
                },
            ),
            &["e_cert_sig_alg_not_match_tbs_sig_alg"],
        ),
        (
            "ecdsa-with-SHA1",
            fx.leaf_with(|t| t.signature.oid = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1")),
            &["e_signature_algorithm_not_allowed"],
        ),
        (
            "ECDSA signature algorithm with NULL parameters",
            fx.leaf_with(|t| t.signature.parameters = Some(der::asn1::Null.into())),
            &["e_signature_algorithm_not_allowed"],
        ),
    ];
    for (what, der, expected) in cases {
        assert_leaf(what, &der, expected);
    }
}

#[test]
fn subject_key_mistakes_are_named() {
    let fx = Fixture::new();
    let key = |spki: SubjectPublicKeyInfoOwned| fx.leaf_with(move |t| t.spki = spki);
    let mut p521 = vec![0x04];
    p521.extend([0x11; 132]);
    let mut off_curve = vec![0x04];
    off_curve.extend([0x01; 64]);
    let mut compressed = vec![0x02];
    compressed.extend([0x01; 32]);
    let ed25519 = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.3.101.112"),
            parameters: None,
        },
        subject_public_key: BitString::from_bytes(&[7; 32]).unwrap(),
    };
    let mut no_null = rsa_spki(2048, &[1, 0, 1]);
    no_null.algorithm.parameters = None;
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "P-521",
            key(ec_spki("1.3.132.0.35", p521)),
            &["e_ec_improper_curves"],
        ),
        (
            "point off the curve",
            key(ec_spki("1.2.840.10045.3.1.7", off_curve)),
            &["e_ec_public_key_invalid"],
        ),
        (
            "compressed point",
            key(ec_spki("1.2.840.10045.3.1.7", compressed)),
            &["e_ec_public_key_invalid"],
        ),
        (
            "Ed25519",
            key(ed25519),
            &["e_spki_key_algorithm_not_allowed"],
        ),
        ("RSA 2048", key(rsa_spki(2048, &[1, 0, 1])), &[]),
        (
            "RSA 1024",
            key(rsa_spki(1024, &[1, 0, 1])),
            &["e_rsa_mod_less_than_2048_bits"],
        ),
        (
            "RSA 2052",
            key(rsa_spki(2052, &[1, 0, 1])),
            &["e_rsa_mod_not_divisible_by_8"],
        ),
        (
            "RSA e=3",
            key(rsa_spki(2048, &[3])),
            &["e_rsa_public_exponent_too_small"],
        ),
        (
            "RSA even e",
            key(rsa_spki(2048, &[1, 0, 2])),
            &["e_rsa_public_exponent_not_odd"],
        ),
        (
            "RSA without NULL",
            key(no_null),
            &["e_spki_rsa_encryption_parameter_not_null"],
        ),
    ];
    for (what, der, expected) in cases {
        assert_leaf(what, &der, expected);
    }
}

#[test]
fn extension_mistakes_are_named() {
    let fx = Fixture::new();
    let ku = |bits: FlagSet<KeyUsages>, critical: bool| {
        move |t: &mut Tbs| t.put(critical, &KeyUsage(bits))
    };
    let eku =
        |oids: Vec<ObjectIdentifier>| move |t: &mut Tbs| t.put(false, &ExtendedKeyUsage(oids));
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "keyUsage not critical",
            fx.leaf_with(|t| t.ext_mut(ID_CE_KEY_USAGE).critical = false),
            &["e_sub_cert_key_usage_not_critical"],
        ),
        (
            "keyCertSign on a leaf",
            fx.leaf_with(ku(
                KeyUsages::DigitalSignature | KeyUsages::KeyCertSign,
                true,
            )),
            &["e_sub_cert_key_usage_cert_sign_bit_set"],
        ),
        (
            "cRLSign on a leaf",
            fx.leaf_with(ku(KeyUsages::DigitalSignature | KeyUsages::CRLSign, true)),
            &["e_sub_cert_key_usage_crl_sign_bit_set"],
        ),
        (
            "keyEncipherment with an EC key",
            fx.leaf_with(ku(
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
                true,
            )),
            &["e_sub_cert_key_usage_key_encipherment_not_rsa"],
        ),
        (
            "no digitalSignature",
            fx.leaf_with(ku(KeyUsages::KeyAgreement.into(), true)),
            &["e_sub_cert_key_usage_missing_digital_signature"],
        ),
        (
            "dataEncipherment",
            fx.leaf_with(ku(
                KeyUsages::DigitalSignature | KeyUsages::DataEncipherment,
                true,
            )),
            &["e_sub_cert_key_usage_unexpected_bit"],
        ),
        (
            "no keyUsage",
            fx.leaf_with(|t| t.remove(ID_CE_KEY_USAGE)),
            &["e_sub_cert_key_usage_missing"],
        ),
        (
            "basicConstraints cA true",
            fx.leaf_with(|t| {
                t.put(
                    true,
                    &BasicConstraints {
                        ca: true,
                        path_len_constraint: None,
                    },
                )
            }),
            &["e_sub_cert_basic_constraints_ca_true"],
        ),
        (
            "basicConstraints not critical",
            fx.leaf_with(|t| t.ext_mut(ID_CE_BASIC_CONSTRAINTS).critical = false),
            &["e_sub_cert_basic_constraints_not_critical"],
        ),
        (
            "no basicConstraints is allowed",
            fx.leaf_with(|t| t.remove(ID_CE_BASIC_CONSTRAINTS)),
            &[],
        ),
        (
            "no EKU",
            fx.leaf_with(|t| t.remove(ID_CE_EXT_KEY_USAGE)),
            &["e_sub_cert_eku_missing"],
        ),
        (
            "clientAuth only",
            fx.leaf_with(eku(vec![ID_KP_CLIENT_AUTH])),
            &[
                "e_sub_cert_eku_server_auth_missing",
                "n_sub_cert_eku_client_auth_present",
            ],
        ),
        (
            "anyExtendedKeyUsage",
            fx.leaf_with(eku(vec![ID_KP_SERVER_AUTH, ANY_EXTENDED_KEY_USAGE])),
            &["e_sub_cert_eku_any_present"],
        ),
        (
            "codeSigning",
            fx.leaf_with(eku(vec![
                ID_KP_SERVER_AUTH,
                const_oid::db::rfc5280::ID_KP_CODE_SIGNING,
            ])),
            &["e_sub_cert_eku_prohibited_value"],
        ),
        (
            "an unknown purpose",
            fx.leaf_with(eku(vec![
                ID_KP_SERVER_AUTH,
                ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1"),
            ])),
            &["w_sub_cert_eku_extra_values"],
        ),
        (
            "EKU critical",
            fx.leaf_with(|t| t.ext_mut(ID_CE_EXT_KEY_USAGE).critical = true),
            &["e_ext_must_not_be_critical"],
        ),
        (
            "no AKI",
            fx.leaf_with(|t| t.remove(ID_CE_AUTHORITY_KEY_IDENTIFIER)),
            &["e_ext_authority_key_identifier_missing"],
        ),
        (
            "AKI without keyIdentifier",
            fx.leaf_with(|t| t.put_raw(ID_CE_AUTHORITY_KEY_IDENTIFIER, false, vec![0x30, 0x00])),
            &["e_ext_authority_key_identifier_no_key_identifier"],
        ),
        (
            "AKI critical",
            fx.leaf_with(|t| t.ext_mut(ID_CE_AUTHORITY_KEY_IDENTIFIER).critical = true),
            &["e_ext_must_not_be_critical"],
        ),
        (
            "no SKI: not even the notice",
            fx.leaf_with(|t| t.remove(ID_CE_SUBJECT_KEY_IDENTIFIER)),
            &[],
        ),
        (
            "no certificatePolicies",
            fx.leaf_with(|t| t.remove(ID_CE_CERTIFICATE_POLICIES)),
            &["w_sub_cert_certificate_policies_dv_missing"],
        ),
        (
            "https CRL DP",
            fx.leaf_with(|t| {
                t.put(
                    false,
                    &CrlDistributionPoints(vec![DistributionPoint {
                        distribution_point: Some(DistributionPointName::FullName(vec![uri(
                            "https://crl.example.net/1.crl",
                        )])),
                        reasons: None,
                        crl_issuer: None,
                    }]),
                )
            }),
            &["e_ext_crl_distribution_point_not_http"],
        ),
        (
            "https AIA",
            fx.leaf_with(|t| {
                t.put(
                    false,
                    &AuthorityInfoAccessSyntax(vec![AccessDescription {
                        access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
                        access_location: uri("https://ca.example.net/int.der"),
                    }]),
                )
            }),
            &["e_ext_aia_uri_not_http"],
        ),
        (
            "duplicate extension",
            fx.leaf_with(|t| {
                let dup = t.ext_mut(ID_CE_CRL_DISTRIBUTION_POINTS).clone();
                t.exts().push(dup);
            }),
            &["e_ext_duplicate_extension"],
        ),
        (
            "unknown critical extension",
            fx.leaf_with(|t| {
                t.put_raw(
                    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.2"),
                    true,
                    vec![0x05, 0x00],
                )
            }),
            &["e_unknown_critical_extension"],
        ),
        (
            "unknown non-critical extension is fine",
            fx.leaf_with(|t| {
                t.put_raw(
                    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.2"),
                    false,
                    vec![0x05, 0x00],
                )
            }),
            &[],
        ),
        (
            "AIA critical",
            fx.leaf_with(|t| t.ext_mut(ID_PE_AUTHORITY_INFO_ACCESS).critical = true),
            &["e_ext_must_not_be_critical"],
        ),
    ];
    for (what, der, expected) in cases {
        assert_leaf(what, &der, expected);
    }
}

#[test]
fn precertificates_need_a_critical_null_poison() {
    let fx = Fixture::new();
    let poison = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
    let precert = fx.leaf_with(|t| t.put_raw(poison, true, vec![0x05, 0x00]));
    let check = |der: &[u8], ctx: &LintContext| names(&lint_certificate(der, ctx));
    assert_eq!(check(&precert, &precert_ctx()), Vec::<&str>::new());
    assert_eq!(
        check(&fx.leaf, &precert_ctx()),
        vec!["e_precert_poison_missing"]
    );
    assert_eq!(
        check(
            &fx.leaf_with(|t| t.put_raw(poison, false, vec![0x05, 0x00])),
            &precert_ctx()
        ),
        vec!["e_precert_poison_not_critical"]
    );
    assert_eq!(
        check(
            &fx.leaf_with(|t| t.put_raw(poison, true, vec![0x04, 0x00])),
            &precert_ctx()
        ),
        vec!["e_precert_poison_value_not_null"]
    );
    assert_eq!(
        check(&precert, &leaf_ctx()),
        vec!["e_poison_in_non_precertificate"]
    );
}

#[test]
fn ca_certificate_mistakes_are_named() {
    let fx = Fixture::new();
    let int_ctx = LintContext::new(Kind::Intermediate);
    let root_ctx = LintContext::new(Kind::Root);
    let check = |der: &[u8], ctx: &LintContext| lint_certificate(der, ctx).lint_names();
    let cases: Vec<(&str, Vec<u8>, &LintContext, &[&str])> = vec![
        (
            "intermediate re-signed",
            fx.intermediate_with(|_| {}),
            &int_ctx,
            &[],
        ),
        ("root re-signed", fx.root_with(|_| {}), &root_ctx, &[]),
        (
            "cA false",
            fx.intermediate_with(|t| {
                t.put(
                    true,
                    &BasicConstraints {
                        ca: false,
                        path_len_constraint: None,
                    },
                )
            }),
            &int_ctx,
            &["e_ca_basic_constraints_ca_false"],
        ),
        (
            "basicConstraints not critical",
            fx.intermediate_with(|t| t.ext_mut(ID_CE_BASIC_CONSTRAINTS).critical = false),
            &int_ctx,
            &["e_ca_basic_constraints_not_critical"],
        ),
        (
            "no basicConstraints",
            fx.root_with(|t| t.remove(ID_CE_BASIC_CONSTRAINTS)),
            &root_ctx,
            &["e_ca_basic_constraints_missing"],
        ),
        (
            "keyUsage not critical",
            fx.intermediate_with(|t| t.ext_mut(ID_CE_KEY_USAGE).critical = false),
            &int_ctx,
            &["e_ca_key_usage_not_critical"],
        ),
        (
            "no keyCertSign",
            fx.root_with(|t| t.put(true, &KeyUsage(KeyUsages::CRLSign.into()))),
            &root_ctx,
            &["e_ca_key_cert_sign_not_set"],
        ),
        (
            "no SKI",
            fx.root_with(|t| t.remove(ID_CE_SUBJECT_KEY_IDENTIFIER)),
            &root_ctx,
            &["e_ext_subject_key_identifier_missing_ca"],
        ),
        (
            "EKU on a root",
            fx.root_with(|t| t.put(false, &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH]))),
            &root_ctx,
            &["e_root_ca_extended_key_usage_present"],
        ),
        (
            "an intermediate linted as a root",
            fx.intermediate.der().to_vec(),
            &root_ctx,
            &[
                "e_root_ca_extended_key_usage_present",
                "e_root_not_self_issued",
            ],
        ),
        (
            "intermediate without AKI",
            fx.intermediate_with(|t| t.remove(ID_CE_AUTHORITY_KEY_IDENTIFIER)),
            &int_ctx,
            &["e_ext_authority_key_identifier_missing"],
        ),
        (
            "intermediate without EKU",
            fx.intermediate_with(|t| t.remove(ID_CE_EXT_KEY_USAGE)),
            &int_ctx,
            &["e_sub_ca_eku_missing"],
        ),
        (
            "a leaf linted as an intermediate",
            fx.leaf.clone(),
            &int_ctx,
            &[
                "e_ca_basic_constraints_ca_false",
                "e_ca_key_cert_sign_not_set",
                "e_ca_crl_sign_not_set",
            ],
        ),
    ];
    for (what, der, ctx, expected) in cases {
        assert_eq!(check(&der, ctx), expected, "{what}");
    }
}

#[test]
fn ignored_lints_are_dropped_but_fatal_findings_are_not() {
    let fx = Fixture::new();
    let private = fx.leaf_with(|t| t.set_san(false, vec![dns("example.com"), ip(&[10, 0, 0, 1])]));
    let mut ctx = leaf_ctx();
    ctx.ignored_lints = vec![
        "e_ext_san_contains_reserved_ip".into(),
        "e_certificate_malformed".into(),
    ];
    assert!(!lint_certificate(&private, &ctx).has_errors());
    assert_eq!(
        lint_certificate(b"junk", &ctx).lint_names(),
        vec!["e_certificate_malformed"]
    );
}

#[test]
fn garbage_is_one_fatal_finding() {
    let fx = Fixture::new();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"junk".to_vec(),
        vec![0x30],
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
        fx.leaf[..fx.leaf.len() - 1].to_vec(),
    ];
    let mut trailing = fx.leaf.clone();
    trailing.push(0);
    inputs.push(trailing);
    // Every truncation and a byte flip at every 7th position: never a panic.
    for i in (0..fx.leaf.len()).step_by(7) {
        inputs.push(fx.leaf[..i].to_vec());
        let mut flipped = fx.leaf.clone();
        flipped[i] ^= 0xff;
        let _ = lint_certificate(&flipped, &leaf_ctx());
        let _ = lint_crl(&flipped, &cairn_lint::CrlContext::default());
    }
    for input in inputs {
        let report = lint_certificate(&input, &leaf_ctx());
        assert_eq!(
            report.lint_names(),
            vec!["e_certificate_malformed"],
            "{input:02x?}"
        );
        assert!(report.has_errors());
        assert_eq!(report.findings[0].severity, cairn_lint::Severity::Fatal);
    }
}

#[test]
fn every_lint_name_is_unique_and_zlint_shaped() {
    let all = cairn_lint::catalog::ALL;
    for (i, lint) in all.iter().enumerate() {
        assert!(
            all[..i].iter().all(|l| l.name != lint.name),
            "{} twice",
            lint.name
        );
        let prefix = match lint.severity {
            cairn_lint::Severity::Fatal | cairn_lint::Severity::Error => "e_",
            cairn_lint::Severity::Warning => "w_",
            cairn_lint::Severity::Notice => "n_",
        };
        assert!(lint.name.starts_with(prefix), "{}", lint.name);
        assert!(!lint.source.is_empty());
        assert_eq!(cairn_lint::catalog::by_name(lint.name), Some(lint));
    }
}
