//! Every lint this crate runs: its stable zlint-style name, severity and the rule it enforces.
//!
//! Names follow zlint's convention (`e_` error, `w_` warning, `n_` notice) and reuse zlint's
//! names where zlint has the same rule, so findings read the same as Boulder's logs.

use crate::Severity;

/// One lint: a named check and the rule it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lint {
    /// The stable name reported in [`crate::Finding::lint`].
    pub name: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// The document and section the rule comes from.
    pub source: &'static str,
}

macro_rules! lints {
    ($( $(#[doc = $doc:literal])* $id:ident = ($name:literal, $sev:ident, $src:literal); )*) => {
        $(
            $(#[doc = $doc])*
            pub const $id: Lint = Lint { name: $name, severity: Severity::$sev, source: $src };
        )*
        /// Every lint, in catalog order.
        pub const ALL: &[Lint] = &[$($id),*];
    };
}

lints! {
    // ----- Decoding -----
    /// RFC 5280 §4.1: the bytes are not one DER `Certificate`; nothing else is checked.
    CERTIFICATE_MALFORMED = ("e_certificate_malformed", Fatal, "RFC 5280 §4.1");
    /// RFC 5280 §5.1: the bytes are not one DER `CertificateList`; nothing else is checked.
    CRL_MALFORMED = ("e_crl_malformed", Fatal, "RFC 5280 §5.1");
    /// RFC 5280 §4.2: extnValue must hold the DER encoding of the extension's ASN.1 type.
    EXT_VALUE_MALFORMED = ("e_ext_value_malformed", Error, "RFC 5280 §4.2");

    // ----- Every certificate -----
    /// RFC 5280 §4.1.2.1, BR §7.1.1: certificates are X.509 v3.
    INVALID_CERTIFICATE_VERSION = ("e_invalid_certificate_version", Error, "RFC 5280 §4.1.2.1; BR §7.1.1");
    /// RFC 5280 §4.1.2.2: the serial number is a positive integer.
    SERIAL_NUMBER_NOT_POSITIVE = ("e_serial_number_not_positive", Error, "RFC 5280 §4.1.2.2");
    /// RFC 5280 §4.1.2.2: the serial number is at most 20 octets.
    SERIAL_NUMBER_LONGER_THAN_20_OCTETS = ("e_serial_number_longer_than_20_octets", Error, "RFC 5280 §4.1.2.2");
    /// BR §7.1: at least 64 bits of CSPRNG output, so at least 9 content octets, not all zero.
    SERIAL_NUMBER_LOW_ENTROPY = ("e_serial_number_low_entropy", Error, "BR §7.1");
    /// RFC 5280 §4.1.1.2: signatureAlgorithm equals the TBSCertificate's signature field.
    CERT_SIG_ALG_NOT_MATCH_TBS_SIG_ALG = ("e_cert_sig_alg_not_match_tbs_sig_alg", Error, "RFC 5280 §4.1.1.2");
    /// BR §7.1.3.2: ecdsa-with-SHA256/384/512 (no parameters) or sha256/384/512WithRSAEncryption
    /// (NULL parameters), byte for byte.
    SIGNATURE_ALGORITHM_NOT_ALLOWED = ("e_signature_algorithm_not_allowed", Error, "BR §7.1.3.2");
    /// RFC 5280 §4.1.2.4: the issuer is a non-empty distinguished name.
    ISSUER_FIELD_EMPTY = ("e_issuer_field_empty", Error, "RFC 5280 §4.1.2.4");
    /// RFC 5280 §4.1.2.5: notBefore is before notAfter.
    VALIDITY_TIME_NOT_POSITIVE = ("e_validity_time_not_positive", Error, "RFC 5280 §4.1.2.5");
    /// RFC 5280 §4.1.2.5, §5.1.2.4: dates through 2049 are UTCTime, from 2050 GeneralizedTime.
    WRONG_TIME_FORMAT_PRE2050 = ("e_wrong_time_format_pre2050", Error, "RFC 5280 §4.1.2.5");
    /// BR §6.1.5, §7.1.3.1: subject keys are RSA or ECDSA.
    SPKI_KEY_ALGORITHM_NOT_ALLOWED = ("e_spki_key_algorithm_not_allowed", Error, "BR §6.1.5; BR §7.1.3.1");
    /// BR §7.1.3.1.1: rsaEncryption parameters are an explicit NULL.
    SPKI_RSA_ENCRYPTION_PARAMETER_NOT_NULL = ("e_spki_rsa_encryption_parameter_not_null", Error, "BR §7.1.3.1.1");
    /// RFC 3279 §2.3.1, RFC 5480 §2.2: the subjectPublicKey decodes as its algorithm's key.
    SPKI_MALFORMED = ("e_spki_malformed", Error, "RFC 3279 §2.3.1; RFC 5480 §2.2");
    /// BR §6.1.5: RSA moduli are at least 2048 bits.
    RSA_MOD_LESS_THAN_2048_BITS = ("e_rsa_mod_less_than_2048_bits", Error, "BR §6.1.5");
    /// BR §6.1.5: the RSA modulus size in bits is divisible by 8.
    RSA_MOD_NOT_DIVISIBLE_BY_8 = ("e_rsa_mod_not_divisible_by_8", Error, "BR §6.1.5");
    /// BR §6.1.6: the RSA public exponent is odd.
    RSA_PUBLIC_EXPONENT_NOT_ODD = ("e_rsa_public_exponent_not_odd", Error, "BR §6.1.6");
    /// BR §6.1.6 (SHOULD, made a MUST by Cairn as by Boulder): the RSA exponent is at least 65537.
    RSA_PUBLIC_EXPONENT_TOO_SMALL = ("e_rsa_public_exponent_too_small", Error, "BR §6.1.6");
    /// BR §6.1.5, §7.1.3.1.2: EC keys are on P-256 or P-384 (P-521 is allowed by the BRs but
    /// refused by Cairn, like Let's Encrypt), named by OID.
    EC_IMPROPER_CURVES = ("e_ec_improper_curves", Error, "BR §6.1.5; BR §7.1.3.1.2");
    /// BR §6.1.6, RFC 5480 §2.2: the EC public key is an uncompressed point on its curve.
    EC_PUBLIC_KEY_INVALID = ("e_ec_public_key_invalid", Error, "BR §6.1.6; RFC 5480 §2.2");
    /// RFC 5280 §4.2: a certificate holds at most one instance of each extension.
    EXT_DUPLICATE_EXTENSION = ("e_ext_duplicate_extension", Error, "RFC 5280 §4.2");
    /// RFC 5280 §4.2, BR §7.1.2.11.5: no critical extension a relying party might not know.
    UNKNOWN_CRITICAL_EXTENSION = ("e_unknown_critical_extension", Error, "RFC 5280 §4.2; BR §7.1.2.11.5");
    /// RFC 5280 §4.2.1.1, §4.2.1.2, §4.2.2.1; BR §7.1.2.7.6, §7.1.2.10.1: AKI, SKI, AIA,
    /// certificatePolicies, CRL DP, EKU (subscribers) and the SCT list are non-critical.
    EXT_MUST_NOT_BE_CRITICAL = ("e_ext_must_not_be_critical", Error, "RFC 5280 §4.2.1.1, §4.2.1.2, §4.2.2.1; BR §7.1.2.7.6");
    /// RFC 5280 §4.1.2.8, BR §7.1.2.7.1: no issuerUniqueID or subjectUniqueID.
    CERT_CONTAINS_UNIQUE_IDENTIFIER = ("e_cert_contains_unique_identifier", Error, "RFC 5280 §4.1.2.8; BR §7.1.2.7.1");
    /// RFC 5280 §4.2.1.1, BR §7.1.2.7.6: AKI is present (all but self-signed roots).
    EXT_AUTHORITY_KEY_IDENTIFIER_MISSING = ("e_ext_authority_key_identifier_missing", Error, "RFC 5280 §4.2.1.1; BR §7.1.2.7.6");
    /// RFC 5280 §4.2.1.1: AKI carries a keyIdentifier.
    EXT_AUTHORITY_KEY_IDENTIFIER_NO_KEY_IDENTIFIER = ("e_ext_authority_key_identifier_no_key_identifier", Error, "RFC 5280 §4.2.1.1");
    /// BR §7.1.2.11.1: AKI has no authorityCertIssuer or authorityCertSerialNumber.
    EXT_AUTHORITY_KEY_IDENTIFIER_HAS_ISSUER_CERT = ("e_ext_authority_key_identifier_has_issuer_cert", Error, "BR §7.1.2.11.1");

    // ----- TLS server subscriber certificates and precertificates -----
    /// Cairn profile: the lifetime (notBefore through notAfter inclusive, BR §6.3.2) is at most
    /// the profile's validity.
    VALIDITY_LONGER_THAN_PROFILE = ("e_validity_longer_than_profile", Error, "Cairn profile; BR §6.3.2");
    /// Cairn configuration: the lifetime is at most the configured maximum.
    VALIDITY_LONGER_THAN_MAX = ("e_validity_longer_than_max", Error, "Cairn configuration; BR §6.3.2");
    /// BR §6.3.2: subscriber certificates are valid for at most 398 days.
    TLS_SERVER_CERT_VALID_TIME_LONGER_THAN_398_DAYS = ("e_tls_server_cert_valid_time_longer_than_398_days", Error, "BR §6.3.2");
    /// BR §7.1.2.7.12, RFC 5280 §4.2.1.6: subjectAltName is present.
    EXT_SAN_MISSING = ("e_ext_san_missing", Error, "BR §7.1.2.7.12; RFC 5280 §4.2.1.6");
    /// RFC 5280 §4.2.1.6: subjectAltName holds at least one name.
    EXT_SAN_NO_ENTRIES = ("e_ext_san_no_entries", Error, "RFC 5280 §4.2.1.6");
    /// BR §7.1.2.7.12: only dNSName and iPAddress entries.
    EXT_SAN_UNSUPPORTED_NAME_TYPE = ("e_ext_san_unsupported_name_type", Error, "BR §7.1.2.7.12");
    /// RFC 5280 §4.2.1.6, BR §7.1.2.7.12: with an empty subject, SAN is critical.
    EXT_SAN_NOT_CRITICAL_WITHOUT_SUBJECT = ("e_ext_san_not_critical_without_subject", Error, "RFC 5280 §4.2.1.6; BR §7.1.2.7.12");
    /// BR §7.1.2.7.12 (RFC 5280 §4.2.1.6 SHOULD): with a non-empty subject, SAN is not critical.
    EXT_SAN_CRITICAL_WITH_SUBJECT_DN = ("e_ext_san_critical_with_subject_dn", Error, "BR §7.1.2.7.12; RFC 5280 §4.2.1.6");
    /// RFC 5280 §4.2.1.6: an iPAddress is 4 (IPv4) or 16 (IPv6) octets.
    SAN_IP_ADDRESS_INVALID_LENGTH = ("e_san_ip_address_invalid_length", Error, "RFC 5280 §4.2.1.6");
    /// BR §7.1.2.7.12, §4.2.2: no Reserved IP addresses (private, loopback, link-local,
    /// documentation, multicast...). Ignore this lint for a private PKI or a test setup.
    EXT_SAN_CONTAINS_RESERVED_IP = ("e_ext_san_contains_reserved_ip", Error, "BR §7.1.2.7.12; BR §4.2.2");
    /// RFC 1035 §2.3.4: a DNS name is at most 253 characters.
    DNSNAME_TOO_LONG = ("e_dnsname_too_long", Error, "RFC 1035 §2.3.4");
    /// RFC 1035 §2.3.4: a label is at most 63 characters.
    DNSNAME_LABEL_TOO_LONG = ("e_dnsname_label_too_long", Error, "RFC 1035 §2.3.4");
    /// RFC 5280 §4.2.1.6, BR §7.1.2.7.12: no empty labels (an empty name, `a..b`, a leading dot).
    DNSNAME_EMPTY_LABEL = ("e_dnsname_empty_label", Error, "RFC 5280 §4.2.1.6; BR §7.1.2.7.12");
    /// RFC 5280 §4.2.1.6 preferred name syntax, BR §7.1.2.7.12: no trailing dot.
    DNSNAME_TRAILING_DOT = ("e_dnsname_trailing_dot", Error, "RFC 5280 §4.2.1.6; BR §7.1.2.7.12");
    /// BR §7.1.2.7.12 (ballot SC12): no underscores.
    DNSNAME_UNDERSCORE = ("e_dnsname_underscore", Error, "BR §7.1.2.7.12");
    /// Cairn policy (as Boulder): names are lowercase, so they compare byte for byte.
    DNSNAME_NOT_LOWERCASE = ("e_dnsname_not_lowercase", Error, "Cairn policy; RFC 4343");
    /// RFC 1034 §3.5, BR §7.1.2.7.12: labels are letters, digits and hyphens.
    DNSNAME_BAD_CHARACTER_IN_LABEL = ("e_dnsname_bad_character_in_label", Error, "RFC 1034 §3.5; BR §7.1.2.7.12");
    /// RFC 1034 §3.5: a label neither starts nor ends with a hyphen.
    DNSNAME_HYPHEN_AT_LABEL_EDGE = ("e_dnsname_hyphen_at_label_edge", Error, "RFC 1034 §3.5");
    /// BR §7.1.2.7.12 (Wildcard Domain Name, §1.6.1): `*` appears only in the leftmost label.
    DNSNAME_WILDCARD_ONLY_IN_LEFT_LABEL = ("e_dnsname_wildcard_only_in_left_label", Error, "BR §1.6.1; BR §7.1.2.7.12");
    /// BR §1.6.1: a wildcard leftmost label is exactly `*`.
    DNSNAME_LEFT_LABEL_WILDCARD_CORRECT = ("e_dnsname_left_label_wildcard_correct", Error, "BR §1.6.1");
    /// BR §4.2.2, §7.1.2.7.12: a fully-qualified name (at least two labels, a non-numeric TLD),
    /// not an Internal Name. Ignore this lint for a private PKI or a test setup.
    DNSNAME_NOT_FULLY_QUALIFIED = ("e_dnsname_not_fully_qualified", Error, "BR §4.2.2; BR §7.1.2.7.12");
    /// BR §7.1.2.7.2 (via §7.1.4.3): the subject commonName is one of the SAN entries.
    SUBJECT_COMMON_NAME_NOT_FROM_SAN = ("e_subject_common_name_not_from_san", Error, "BR §7.1.2.7.2; BR §7.1.4.3");
    /// RFC 5280 Appendix A (ub-common-name): at most 64 characters.
    SUBJECT_COMMON_NAME_MAX_LENGTH = ("e_subject_common_name_max_length", Error, "RFC 5280 Appendix A");
    /// BR §7.1.2.7.2: a domain-validated subject holds only countryName and commonName.
    DV_SUBJECT_CONTAINS_DISALLOWED_ATTRIBUTE = ("e_dv_subject_contains_disallowed_attribute", Error, "BR §7.1.2.7.2");
    /// BR §7.1.2.7.8: basicConstraints, if present, has cA false.
    SUB_CERT_BASIC_CONSTRAINTS_CA_TRUE = ("e_sub_cert_basic_constraints_ca_true", Error, "BR §7.1.2.7.8");
    /// BR §7.1.2.7.8: basicConstraints, if present, has no pathLenConstraint.
    SUB_CERT_BASIC_CONSTRAINTS_PATH_LEN_PRESENT = ("e_sub_cert_basic_constraints_path_len_present", Error, "BR §7.1.2.7.8");
    /// BR §7.1.2.7.6: basicConstraints, if present, is critical.
    SUB_CERT_BASIC_CONSTRAINTS_NOT_CRITICAL = ("e_sub_cert_basic_constraints_not_critical", Error, "BR §7.1.2.7.6");
    /// Cairn policy (BR §7.1.2.7.6 SHOULD): keyUsage is present.
    SUB_CERT_KEY_USAGE_MISSING = ("e_sub_cert_key_usage_missing", Error, "Cairn policy; BR §7.1.2.7.6");
    /// BR §7.1.2.7.6: keyUsage is critical.
    SUB_CERT_KEY_USAGE_NOT_CRITICAL = ("e_sub_cert_key_usage_not_critical", Error, "BR §7.1.2.7.6");
    /// BR §7.1.2.7.11: digitalSignature is set (MUST for ECDSA, SHOULD for RSA; Cairn sets it always).
    SUB_CERT_KEY_USAGE_MISSING_DIGITAL_SIGNATURE = ("e_sub_cert_key_usage_missing_digital_signature", Error, "BR §7.1.2.7.11");
    /// BR §7.1.2.7.11, RFC 5280 §4.2.1.3: keyCertSign is not set on a subscriber certificate.
    SUB_CERT_KEY_USAGE_CERT_SIGN_BIT_SET = ("e_sub_cert_key_usage_cert_sign_bit_set", Error, "BR §7.1.2.7.11; RFC 5280 §4.2.1.3");
    /// BR §7.1.2.7.11: cRLSign is not set on a subscriber certificate.
    SUB_CERT_KEY_USAGE_CRL_SIGN_BIT_SET = ("e_sub_cert_key_usage_crl_sign_bit_set", Error, "BR §7.1.2.7.11");
    /// BR §7.1.2.7.11: keyEncipherment only with an RSA key.
    SUB_CERT_KEY_USAGE_KEY_ENCIPHERMENT_NOT_RSA = ("e_sub_cert_key_usage_key_encipherment_not_rsa", Error, "BR §7.1.2.7.11");
    /// BR §7.1.2.7.11: no other bits (RSA: digitalSignature, keyEncipherment; ECDSA:
    /// digitalSignature, keyAgreement).
    SUB_CERT_KEY_USAGE_UNEXPECTED_BIT = ("e_sub_cert_key_usage_unexpected_bit", Error, "BR §7.1.2.7.11");
    /// BR §7.1.2.7.10: extKeyUsage is present.
    SUB_CERT_EKU_MISSING = ("e_sub_cert_eku_missing", Error, "BR §7.1.2.7.10");
    /// BR §7.1.2.7.10: extKeyUsage contains id-kp-serverAuth.
    SUB_CERT_EKU_SERVER_AUTH_MISSING = ("e_sub_cert_eku_server_auth_missing", Error, "BR §7.1.2.7.10");
    /// BR §7.1.2.7.10: no anyExtendedKeyUsage.
    SUB_CERT_EKU_ANY_PRESENT = ("e_sub_cert_eku_any_present", Error, "BR §7.1.2.7.10");
    /// BR §7.1.2.7.10: no codeSigning, emailProtection, timeStamping or OCSPSigning.
    SUB_CERT_EKU_PROHIBITED_VALUE = ("e_sub_cert_eku_prohibited_value", Error, "BR §7.1.2.7.10");
    /// BR §7.1.2.7.10: other purposes than serverAuth and clientAuth are NOT RECOMMENDED.
    SUB_CERT_EKU_EXTRA_VALUES = ("w_sub_cert_eku_extra_values", Warning, "BR §7.1.2.7.10");
    /// Chrome Root Program Policy §3.2.2: hierarchies serving Chrome become TLS-server-only
    /// (no clientAuth) by June 2026.
    SUB_CERT_EKU_CLIENT_AUTH_PRESENT = ("n_sub_cert_eku_client_auth_present", Notice, "Chrome Root Program Policy §3.2.2");
    /// BR §7.1.2.7.6: subjectKeyIdentifier is NOT RECOMMENDED in subscriber certificates
    /// (RFC 5280 §4.2.1.2 says SHOULD; both are allowed).
    SUB_CERT_SUBJECT_KEY_IDENTIFIER_PRESENT = ("n_sub_cert_subject_key_identifier_present", Notice, "BR §7.1.2.7.6; RFC 5280 §4.2.1.2");
    /// BR §7.1.2.7.9, §7.1.6.4: certificatePolicies contains the domain-validated policy
    /// 2.23.140.1.2.1.
    SUB_CERT_CERTIFICATE_POLICIES_DV_MISSING = ("w_sub_cert_certificate_policies_dv_missing", Warning, "BR §7.1.2.7.9; BR §7.1.6.4");
    /// BR §7.1.2.11.2: CRL distribution points are http:// URIs.
    EXT_CRL_DISTRIBUTION_POINT_NOT_HTTP = ("e_ext_crl_distribution_point_not_http", Error, "BR §7.1.2.11.2");
    /// BR §7.1.2.7.7: authorityInfoAccess locations are http:// URIs.
    EXT_AIA_URI_NOT_HTTP = ("e_ext_aia_uri_not_http", Error, "BR §7.1.2.7.7");
    /// RFC 6962 §3.1: a precertificate carries the poison extension 1.3.6.1.4.1.11129.2.4.3.
    PRECERT_POISON_MISSING = ("e_precert_poison_missing", Error, "RFC 6962 §3.1");
    /// RFC 6962 §3.1: the poison extension is critical.
    PRECERT_POISON_NOT_CRITICAL = ("e_precert_poison_not_critical", Error, "RFC 6962 §3.1");
    /// RFC 6962 §3.1: the poison extension's value is ASN.1 NULL.
    PRECERT_POISON_VALUE_NOT_NULL = ("e_precert_poison_value_not_null", Error, "RFC 6962 §3.1");
    /// RFC 6962 §3.1: only precertificates carry the poison extension.
    POISON_IN_NON_PRECERTIFICATE = ("e_poison_in_non_precertificate", Error, "RFC 6962 §3.1");

    // ----- CA certificates -----
    /// RFC 5280 §4.2.1.9, BR §7.1.2.10.4: a CA certificate has basicConstraints.
    CA_BASIC_CONSTRAINTS_MISSING = ("e_ca_basic_constraints_missing", Error, "RFC 5280 §4.2.1.9; BR §7.1.2.10.4");
    /// RFC 5280 §4.2.1.9: a CA's basicConstraints is critical.
    CA_BASIC_CONSTRAINTS_NOT_CRITICAL = ("e_ca_basic_constraints_not_critical", Error, "RFC 5280 §4.2.1.9");
    /// RFC 5280 §4.2.1.9: a CA certificate has cA true.
    CA_BASIC_CONSTRAINTS_CA_FALSE = ("e_ca_basic_constraints_ca_false", Error, "RFC 5280 §4.2.1.9");
    /// RFC 5280 §4.2.1.3, BR §7.1.2.10.7: a CA certificate has keyUsage.
    CA_KEY_USAGE_MISSING = ("e_ca_key_usage_missing", Error, "RFC 5280 §4.2.1.3; BR §7.1.2.10.7");
    /// BR §7.1.2.10.7: a CA's keyUsage is critical.
    CA_KEY_USAGE_NOT_CRITICAL = ("e_ca_key_usage_not_critical", Error, "BR §7.1.2.10.7");
    /// BR §7.1.2.10.7: keyCertSign is set.
    CA_KEY_CERT_SIGN_NOT_SET = ("e_ca_key_cert_sign_not_set", Error, "BR §7.1.2.10.7");
    /// BR §7.1.2.10.7: cRLSign is set.
    CA_CRL_SIGN_NOT_SET = ("e_ca_crl_sign_not_set", Error, "BR §7.1.2.10.7");
    /// RFC 5280 §4.2.1.2: a CA certificate has a subjectKeyIdentifier.
    EXT_SUBJECT_KEY_IDENTIFIER_MISSING_CA = ("e_ext_subject_key_identifier_missing_ca", Error, "RFC 5280 §4.2.1.2");
    /// BR §7.1.2.1.2: a root has no extKeyUsage.
    ROOT_CA_EXTENDED_KEY_USAGE_PRESENT = ("e_root_ca_extended_key_usage_present", Error, "BR §7.1.2.1.2");
    /// BR §7.1.2.1: a root is self-issued (subject equals issuer).
    ROOT_NOT_SELF_ISSUED = ("e_root_not_self_issued", Error, "BR §7.1.2.1");
    /// BR §7.1.2.10.6 (via §7.1.2.2): a TLS subordinate CA has extKeyUsage.
    SUB_CA_EKU_MISSING = ("e_sub_ca_eku_missing", Error, "BR §7.1.2.2; BR §7.1.2.10.6");
    /// BR §7.1.2.10.6: a TLS subordinate CA's extKeyUsage has serverAuth.
    SUB_CA_EKU_SERVER_AUTH_MISSING = ("e_sub_ca_eku_server_auth_missing", Error, "BR §7.1.2.10.6");
    /// BR §7.1.2.10.6: a TLS subordinate CA's extKeyUsage has no anyExtendedKeyUsage.
    SUB_CA_EKU_ANY_PRESENT = ("e_sub_ca_eku_any_present", Error, "BR §7.1.2.10.6");

    // ----- Delegated signers (OCSP responder, CRL signer) -----
    /// BR §7.1.2.8.4, RFC 5280 §4.2.1.9: a delegated signer is not a CA (no cA true, no
    /// keyCertSign).
    DELEGATED_SIGNER_IS_CA = ("e_delegated_signer_is_ca", Error, "BR §7.1.2.8.4; RFC 5280 §4.2.1.9");
    /// BR §7.1.2.8.7, RFC 5280 §4.2.1.3: a critical keyUsage with digitalSignature (OCSP
    /// responder) or cRLSign (CRL signer).
    DELEGATED_SIGNER_KEY_USAGE = ("e_delegated_signer_key_usage", Error, "BR §7.1.2.8.7; RFC 5280 §4.2.1.3");
    /// BR §7.1.2.8.5, RFC 6960 §4.2.2.2: an OCSP responder's extKeyUsage is id-kp-OCSPSigning
    /// and nothing else.
    OCSP_RESPONDER_EKU = ("e_ocsp_responder_eku_not_ocsp_signing", Error, "BR §7.1.2.8.5; RFC 6960 §4.2.2.2");
    /// BR §7.1.2.8.6, RFC 6960 §4.2.2.2.1: an OCSP responder carries id-pkix-ocsp-nocheck.
    OCSP_RESPONDER_NOCHECK_MISSING = ("e_ocsp_responder_nocheck_missing", Error, "BR §7.1.2.8.6; RFC 6960 §4.2.2.2.1");

    // ----- CRLs -----
    /// RFC 5280 §5.1.2.1, BR §7.2.1: CRLs are v2.
    CRL_VERSION_NOT_2 = ("e_crl_version_not_2", Error, "RFC 5280 §5.1.2.1; BR §7.2.1");
    /// RFC 5280 §5.1.1.2: signatureAlgorithm equals the TBSCertList's signature field.
    CRL_SIG_ALG_NOT_MATCH_TBS_SIG_ALG = ("e_crl_sig_alg_not_match_tbs_sig_alg", Error, "RFC 5280 §5.1.1.2");
    /// RFC 5280 §5.1.2.3: the CRL issuer is a non-empty distinguished name.
    CRL_ISSUER_EMPTY = ("e_crl_issuer_empty", Error, "RFC 5280 §5.1.2.3");
    /// RFC 5280 §5.1.2.5, BR §7.2.2: nextUpdate is present.
    CRL_NEXT_UPDATE_MISSING = ("e_crl_next_update_missing", Error, "RFC 5280 §5.1.2.5; BR §7.2.2");
    /// RFC 5280 §5.1.2.5: nextUpdate is after thisUpdate.
    CRL_NEXT_UPDATE_NOT_AFTER_THIS_UPDATE = ("e_crl_next_update_not_after_this_update", Error, "RFC 5280 §5.1.2.5");
    /// BR §4.9.7: nextUpdate is at most 10 days after thisUpdate (subscriber CRLs).
    CRL_VALIDITY_TOO_LONG = ("e_crl_validity_too_long", Error, "BR §4.9.7");
    /// RFC 5280 §5.1.2.6: when nothing is revoked the revokedCertificates list is absent.
    CRL_EMPTY_REVOKED_CERTIFICATES = ("e_crl_empty_revoked_certificates", Error, "RFC 5280 §5.1.2.6");
    /// RFC 5280 §5.2.3, BR §7.2.2: the CRL number extension is present.
    CRL_NUMBER_MISSING = ("e_crl_number_missing", Error, "RFC 5280 §5.2.3; BR §7.2.2");
    /// RFC 5280 §5.2.3: the CRL number extension is not critical.
    CRL_NUMBER_CRITICAL = ("e_crl_number_critical", Error, "RFC 5280 §5.2.3");
    /// RFC 5280 §5.2.3: the CRL number is a non-negative integer of at most 20 octets.
    CRL_NUMBER_INVALID = ("e_crl_number_invalid", Error, "RFC 5280 §5.2.3");
    /// RFC 5280 §5.2.1, BR §7.2.2: the CRL has an authorityKeyIdentifier with a keyIdentifier.
    CRL_AKI_MISSING = ("e_crl_aki_missing", Error, "RFC 5280 §5.2.1; BR §7.2.2");
    /// BR §7.2.2: a partitioned (sharded) CRL has an issuingDistributionPoint.
    CRL_IDP_MISSING = ("e_crl_idp_missing", Error, "BR §7.2.2");
    /// RFC 5280 §5.2.5: issuingDistributionPoint is critical.
    CRL_IDP_NOT_CRITICAL = ("e_crl_idp_not_critical", Error, "RFC 5280 §5.2.5");
    /// BR §7.2.2: the issuingDistributionPoint names its CRL by http:// URIs (fullName).
    CRL_IDP_URI_NOT_HTTP = ("e_crl_idp_uri_not_http", Error, "BR §7.2.2");
    /// BR §7.2.2: a revoked entry's reasonCode is absent or one of keyCompromise,
    /// affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn (never
    /// unspecified, which is expressed by omitting the extension).
    CRL_REASON_CODE_NOT_ALLOWED = ("e_crl_reason_code_not_allowed", Error, "BR §7.2.2");
}

/// The lint of this name, if any.
pub fn by_name(name: &str) -> Option<&'static Lint> {
    ALL.iter().find(|l| l.name == name)
}
