//! Certificate linting: decoding, the rules every certificate follows (version, serial,
//! signature algorithm, validity encoding, subject key, extension hygiene), and dispatch to the
//! subscriber or CA rules.

use crate::asn1::{CertificateModel, TbsCertificateModel};
use crate::catalog::{self as lints, Lint};
use crate::{Findings, Kind, LintContext, LintReport};
use const_oid::AssociatedOid;
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_CERTIFICATE_POLICIES,
    ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_EXT_KEY_USAGE, ID_CE_INHIBIT_ANY_POLICY, ID_CE_KEY_USAGE,
    ID_CE_NAME_CONSTRAINTS, ID_CE_POLICY_CONSTRAINTS, ID_CE_SUBJECT_ALT_NAME,
    ID_CE_SUBJECT_KEY_IDENTIFIER, ID_PE_AUTHORITY_INFO_ACCESS,
};
use der::asn1::{Any, IntRef, ObjectIdentifier};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierRef;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::time::Time;

/// RFC 6962 §3.1 precertificate poison.
pub(crate) const OID_CT_POISON: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// RFC 6962 §3.3 embedded SCT list.
const OID_CT_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
/// rsaEncryption.
pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey.
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1.
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// BR §7.1.3.2 signature algorithms: (OID, parameters must be NULL).
const ALLOWED_SIGNATURE_ALGORITHMS: [(ObjectIdentifier, bool); 6] = [
    // sha256/384/512WithRSAEncryption, NULL parameters.
    (ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"), true),
    (ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12"), true),
    (ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13"), true),
    // ecdsa-with-SHA256/384/512, parameters absent.
    (ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"), false),
    (ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3"), false),
    (ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4"), false),
];

/// Extensions whose semantics the linter knows (anything else must not be critical).
const KNOWN_EXTENSIONS: [ObjectIdentifier; 14] = [
    ID_CE_KEY_USAGE,
    ID_CE_BASIC_CONSTRAINTS,
    ID_CE_SUBJECT_ALT_NAME,
    ID_CE_EXT_KEY_USAGE,
    ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ID_CE_SUBJECT_KEY_IDENTIFIER,
    ID_CE_CERTIFICATE_POLICIES,
    ID_CE_CRL_DISTRIBUTION_POINTS,
    ID_PE_AUTHORITY_INFO_ACCESS,
    ID_CE_NAME_CONSTRAINTS,
    ID_CE_POLICY_CONSTRAINTS,
    ID_CE_INHIBIT_ANY_POLICY,
    OID_CT_POISON,
    OID_CT_SCT_LIST,
];

/// Known extensions that are never critical.
const NEVER_CRITICAL: [ObjectIdentifier; 7] = [
    ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ID_CE_SUBJECT_KEY_IDENTIFIER,
    ID_PE_AUTHORITY_INFO_ACCESS,
    ID_CE_CERTIFICATE_POLICIES,
    ID_CE_CRL_DISTRIBUTION_POINTS,
    ID_CE_EXT_KEY_USAGE,
    OID_CT_SCT_LIST,
];

/// A decoded extension: absent, present but not decodable (already reported), or its value.
pub(crate) enum Slot<T> {
    Absent,
    Malformed,
    Present { critical: bool, value: T },
}

impl<T> Slot<T> {
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }

    pub(crate) fn present(&self) -> Option<(bool, &T)> {
        match self {
            Slot::Present { critical, value } => Some((*critical, value)),
            _ => None,
        }
    }
}

/// The extensions the rules look at, each decoded once.
pub(crate) struct Extensions<'a> {
    pub(crate) all: &'a [Extension],
    pub(crate) san: Slot<SubjectAltName>,
    pub(crate) key_usage: Slot<KeyUsage>,
    pub(crate) eku: Slot<ExtendedKeyUsage>,
    pub(crate) basic_constraints: Slot<BasicConstraints>,
    pub(crate) aki: Slot<AuthorityKeyIdentifier>,
    pub(crate) ski: Slot<SubjectKeyIdentifier>,
    pub(crate) policies: Slot<CertificatePolicies>,
    pub(crate) crl_dp: Slot<CrlDistributionPoints>,
    pub(crate) aia: Slot<AuthorityInfoAccessSyntax>,
}

impl<'a> Extensions<'a> {
    fn decode(all: &'a [Extension], findings: &mut Findings<'_>) -> Extensions<'a> {
        Extensions {
            all,
            san: decode_ext(all, findings),
            key_usage: decode_ext(all, findings),
            eku: decode_ext(all, findings),
            basic_constraints: decode_ext(all, findings),
            aki: decode_ext(all, findings),
            ski: decode_ext(all, findings),
            policies: decode_ext(all, findings),
            crl_dp: decode_ext(all, findings),
            aia: decode_ext(all, findings),
        }
    }

    /// The first extension with this OID.
    pub(crate) fn raw(&self, oid: ObjectIdentifier) -> Option<&'a Extension> {
        self.all.iter().find(|e| e.extn_id == oid)
    }
}

/// Decodes the first extension of type `T`, reporting it if it does not decode.
pub(crate) fn decode_ext<T>(all: &[Extension], findings: &mut Findings<'_>) -> Slot<T>
where
    T: for<'b> Decode<'b> + AssociatedOid,
{
    decode_ext_oid(all, T::OID, findings)
}

/// Decodes the first extension with OID `oid` as a `T` (for types whose `AssociatedOid` is
/// wrong: x509-cert 0.3.0 gives `IssuingDistributionPoint` the subjectInfoAccess OID).
pub(crate) fn decode_ext_oid<T>(
    all: &[Extension],
    oid: ObjectIdentifier,
    findings: &mut Findings<'_>,
) -> Slot<T>
where
    T: for<'b> Decode<'b>,
{
    let Some(ext) = all.iter().find(|e| e.extn_id == oid) else {
        return Slot::Absent;
    };
    match T::from_der(ext.extn_value.as_bytes()) {
        Ok(value) => Slot::Present {
            critical: ext.critical,
            value,
        },
        Err(_) => {
            findings.report(
                lints::EXT_VALUE_MALFORMED,
                format!("extension {oid} does not decode"),
            );
            Slot::Malformed
        }
    }
}

/// A decoded certificate, as the rules see it.
pub(crate) struct Cert<'a> {
    pub(crate) model: &'a CertificateModel<'a>,
    pub(crate) tbs: &'a TbsCertificateModel<'a>,
    pub(crate) exts: Extensions<'a>,
    /// The subject key is RSA (for the keyUsage rules).
    pub(crate) rsa_key: bool,
}

/// Lints one DER certificate against what `ctx` says it should be. Never panics: bytes that
/// are not a certificate give a single [`Severity::Fatal`](crate::Severity::Fatal) finding
/// `e_certificate_malformed`.
pub fn lint_certificate(der: &[u8], ctx: &LintContext) -> LintReport {
    let mut findings = Findings::new(&ctx.ignored_lints);
    let model = match CertificateModel::from_der(der) {
        Ok(model) => model,
        Err(e) => {
            findings.report(lints::CERTIFICATE_MALFORMED, e.to_string());
            return findings.finish();
        }
    };
    let tbs = &model.tbs_certificate;
    let exts = Extensions::decode(tbs.extensions.as_deref().unwrap_or(&[]), &mut findings);
    let cert = Cert {
        model: &model,
        tbs,
        exts,
        rsa_key: tbs.subject_public_key_info.algorithm.oid == OID_RSA_ENCRYPTION,
    };

    check_version(&cert, &mut findings);
    check_serial(cert.tbs.serial_number, &mut findings);
    check_signature_algorithm(&cert, &mut findings);
    if cert.tbs.issuer.is_empty() {
        findings.report(lints::ISSUER_FIELD_EMPTY, "the issuer name is empty");
    }
    check_validity_encoding(&cert, &mut findings);
    check_subject_public_key(&cert, &mut findings);
    check_extension_hygiene(&cert, &mut findings);

    match ctx.kind {
        Kind::TlsServerLeaf {
            profile_validity,
            max_validity,
        } => crate::subscriber::check(&cert, profile_validity, max_validity, false, &mut findings),
        Kind::Precertificate {
            profile_validity,
            max_validity,
        } => crate::subscriber::check(&cert, profile_validity, max_validity, true, &mut findings),
        Kind::Intermediate => crate::ca::check(&cert, false, &mut findings),
        Kind::Root => crate::ca::check(&cert, true, &mut findings),
        Kind::OcspResponder => crate::delegated::check(&cert, true, &mut findings),
        Kind::CrlSigner => crate::delegated::check(&cert, false, &mut findings),
    }
    findings.finish()
}

fn check_version(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let version = cert.tbs.version.map(|v| v.as_bytes().to_vec());
    if version.as_deref() != Some(&[2]) {
        let shown = match version {
            None => "absent (v1)".to_string(),
            Some(v) => format!("0x{}", hex_bytes(&v)),
        };
        findings.report(
            lints::INVALID_CERTIFICATE_VERSION,
            format!("version is {shown}, expected 2 (v3)"),
        );
    }
    if cert.tbs.issuer_unique_id.is_some() || cert.tbs.subject_unique_id.is_some() {
        findings.report(
            lints::CERT_CONTAINS_UNIQUE_IDENTIFIER,
            "issuerUniqueID or subjectUniqueID is present",
        );
    }
}

/// Serial number rules, shared with CRL entries' reading of positivity.
pub(crate) fn check_serial(serial: IntRef<'_>, findings: &mut Findings<'_>) {
    let bytes = serial.as_bytes();
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let zero = bytes.iter().all(|b| *b == 0);
    if negative || zero {
        findings.report(
            lints::SERIAL_NUMBER_NOT_POSITIVE,
            format!("serial 0x{} is not positive", hex_bytes(bytes)),
        );
    }
    if bytes.len() > 20 {
        findings.report(
            lints::SERIAL_NUMBER_LONGER_THAN_20_OCTETS,
            format!("serial is {} octets", bytes.len()),
        );
    }
    if !negative && !zero && bytes.len() < 9 {
        findings.report(
            lints::SERIAL_NUMBER_LOW_ENTROPY,
            format!(
                "serial is {} octets; 64 bits of entropy need at least 9",
                bytes.len()
            ),
        );
    }
}

/// True if `alg` is one of the BR §7.1.3.2 encodings.
pub(crate) fn signature_algorithm_allowed(alg: &AlgorithmIdentifierRef<'_>) -> bool {
    ALLOWED_SIGNATURE_ALGORITHMS
        .iter()
        .any(|(oid, null_params)| {
            alg.oid == *oid
                && match alg.parameters {
                    None => !null_params,
                    Some(p) => *null_params && p.is_null(),
                }
        })
}

/// Compares two AlgorithmIdentifiers by their encodings.
pub(crate) fn same_algorithm(
    a: &AlgorithmIdentifierRef<'_>,
    b: &AlgorithmIdentifierRef<'_>,
) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn check_signature_algorithm(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let inner = &cert.tbs.signature;
    let outer = &cert.model.signature_algorithm;
    if !same_algorithm(inner, outer) {
        findings.report(
            lints::CERT_SIG_ALG_NOT_MATCH_TBS_SIG_ALG,
            format!("TBS says {}, the certificate says {}", inner.oid, outer.oid),
        );
    }
    if !signature_algorithm_allowed(outer) {
        findings.report(
            lints::SIGNATURE_ALGORITHM_NOT_ALLOWED,
            format!(
                "signature algorithm {} (parameters {}) is not allowed",
                outer.oid,
                if outer.parameters.is_some() {
                    "present"
                } else {
                    "absent"
                }
            ),
        );
    }
}

/// Seconds since the epoch of a certificate or CRL time.
pub(crate) fn unix_seconds(t: &Time) -> u64 {
    t.to_unix_duration().as_secs()
}

/// Reports GeneralizedTime used for a date that UTCTime can carry (RFC 5280 §4.1.2.5).
pub(crate) fn check_time_encoding(what: &str, t: &Time, findings: &mut Findings<'_>) {
    if let Time::GeneralTime(g) = t {
        let year = g.to_date_time().year();
        if year < 2050 {
            findings.report(
                lints::WRONG_TIME_FORMAT_PRE2050,
                format!("{what} ({year}) is GeneralizedTime; dates before 2050 are UTCTime"),
            );
        }
    }
}

fn check_validity_encoding(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let v = &cert.tbs.validity;
    check_time_encoding("notBefore", &v.not_before, findings);
    check_time_encoding("notAfter", &v.not_after, findings);
    if unix_seconds(&v.not_before) >= unix_seconds(&v.not_after) {
        findings.report(
            lints::VALIDITY_TIME_NOT_POSITIVE,
            format!(
                "notBefore {} is not before notAfter {}",
                v.not_before, v.not_after
            ),
        );
    }
}

/// PKCS#1 `RSAPublicKey`, read leniently.
#[derive(Sequence)]
struct RsaPublicKeyModel<'a> {
    modulus: IntRef<'a>,
    public_exponent: IntRef<'a>,
}

/// Significant bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    match bytes.get(start) {
        None => 0,
        Some(first) => (bytes.len() - start - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn check_subject_public_key(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    let spki = &cert.tbs.subject_public_key_info;
    let oid = spki.algorithm.oid;
    let Some(key_bits) = spki.subject_public_key.as_bytes() else {
        findings.report(lints::SPKI_MALFORMED, "subjectPublicKey has unused bits");
        return;
    };
    if oid == OID_RSA_ENCRYPTION {
        if !spki.algorithm.parameters.is_some_and(|p| p.is_null()) {
            findings.report(
                lints::SPKI_RSA_ENCRYPTION_PARAMETER_NOT_NULL,
                "rsaEncryption parameters are not an explicit NULL",
            );
        }
        let Ok(rsa) = RsaPublicKeyModel::from_der(key_bits) else {
            findings.report(lints::SPKI_MALFORMED, "not a PKCS#1 RSAPublicKey");
            return;
        };
        let n = rsa.modulus.as_bytes();
        let e = rsa.public_exponent.as_bytes();
        if n.first().is_some_and(|b| b & 0x80 != 0) || e.first().is_some_and(|b| b & 0x80 != 0) {
            findings.report(lints::SPKI_MALFORMED, "negative RSA modulus or exponent");
            return;
        }
        let bits = bit_length(n);
        if bits < 2048 {
            findings.report(
                lints::RSA_MOD_LESS_THAN_2048_BITS,
                format!("RSA modulus is {bits} bits"),
            );
        }
        if !bits.is_multiple_of(8) {
            findings.report(
                lints::RSA_MOD_NOT_DIVISIBLE_BY_8,
                format!("RSA modulus is {bits} bits"),
            );
        }
        if e.last().is_none_or(|b| b & 1 == 0) {
            findings.report(
                lints::RSA_PUBLIC_EXPONENT_NOT_ODD,
                "the RSA public exponent is even",
            );
        }
        if bit_length(e) < 17 {
            findings.report(
                lints::RSA_PUBLIC_EXPONENT_TOO_SMALL,
                format!("the RSA public exponent 0x{} is below 65537", hex_bytes(e)),
            );
        }
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let algorithm = match curve {
            Some(c) if c == OID_P256 => &aws_lc_rs::agreement::ECDH_P256,
            Some(c) if c == OID_P384 => &aws_lc_rs::agreement::ECDH_P384,
            Some(c) => {
                findings.report(
                    lints::EC_IMPROPER_CURVES,
                    format!("curve {c} is not P-256 or P-384"),
                );
                return;
            }
            None => {
                findings.report(
                    lints::EC_IMPROPER_CURVES,
                    "the EC key does not name its curve (namedCurve)",
                );
                return;
            }
        };
        check_ec_point(algorithm, key_bits, findings);
    } else {
        findings.report(
            lints::SPKI_KEY_ALGORITHM_NOT_ALLOWED,
            format!("public key algorithm {oid} is not RSA or ECDSA"),
        );
    }
}

fn check_ec_point(
    algorithm: &'static aws_lc_rs::agreement::Algorithm,
    point: &[u8],
    findings: &mut Findings<'_>,
) {
    use aws_lc_rs::agreement::{ParsedPublicKey, UnparsedPublicKey};
    if point.first() != Some(&0x04) {
        findings.report(
            lints::EC_PUBLIC_KEY_INVALID,
            "the EC point is not in uncompressed form",
        );
        return;
    }
    if ParsedPublicKey::try_from(&UnparsedPublicKey::new(algorithm, point)).is_err() {
        findings.report(
            lints::EC_PUBLIC_KEY_INVALID,
            "the EC point is not a valid point of its curve",
        );
    }
}

fn check_extension_hygiene(cert: &Cert<'_>, findings: &mut Findings<'_>) {
    check_extension_list(cert.exts.all, &KNOWN_EXTENSIONS, findings);
    for ext in cert.exts.all {
        if ext.critical && NEVER_CRITICAL.contains(&ext.extn_id) {
            findings.report(
                lints::EXT_MUST_NOT_BE_CRITICAL,
                format!("extension {} is critical", ext.extn_id),
            );
        }
    }
}

/// Duplicate and unknown-critical checks over any extension list (certificates, CRLs).
pub(crate) fn check_extension_list(
    all: &[Extension],
    known: &[ObjectIdentifier],
    findings: &mut Findings<'_>,
) {
    for (i, ext) in all.iter().enumerate() {
        // Report an OID once, at its second occurrence.
        if all[..i].iter().filter(|e| e.extn_id == ext.extn_id).count() == 1 {
            findings.report(
                lints::EXT_DUPLICATE_EXTENSION,
                format!("extension {} appears more than once", ext.extn_id),
            );
        }
        if ext.critical && !known.contains(&ext.extn_id) {
            findings.report(
                lints::UNKNOWN_CRITICAL_EXTENSION,
                format!("unknown extension {} is critical", ext.extn_id),
            );
        }
    }
}

/// True for an `http://` URI (BR: CRL and AIA locations are plain HTTP).
pub(crate) fn is_http_uri(name: &GeneralName) -> bool {
    matches!(name, GeneralName::UniformResourceIdentifier(uri)
        if uri.as_str().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")))
}

/// A short description of a GeneralName, for details.
pub(crate) fn describe_general_name(name: &GeneralName) -> String {
    match name {
        GeneralName::UniformResourceIdentifier(u) => format!("URI {}", u.as_str()),
        GeneralName::DnsName(d) => format!("dNSName {}", d.as_str()),
        GeneralName::Rfc822Name(_) => "rfc822Name".into(),
        GeneralName::IpAddress(_) => "iPAddress".into(),
        GeneralName::DirectoryName(_) => "directoryName".into(),
        GeneralName::OtherName(_) => "otherName".into(),
        GeneralName::EdiPartyName(_) => "ediPartyName".into(),
        GeneralName::RegisteredId(_) => "registeredID".into(),
    }
}

/// Lowercase hex, for details.
pub(crate) fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reports `lint` unless the extension is absent; the value when present.
pub(crate) fn require<'s, T>(
    slot: &'s Slot<T>,
    missing: Lint,
    detail: &str,
    findings: &mut Findings<'_>,
) -> Option<(bool, &'s T)> {
    if slot.is_absent() {
        findings.report(missing, detail);
    }
    slot.present()
}

/// The value of an attribute as text, for the string types names use.
pub(crate) fn directory_string(value: &Any) -> Option<String> {
    use der::{Tag, Tagged};
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}
