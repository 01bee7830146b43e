//! `cairn ceremony` against SoftHSM2: a whole ceremony (root key in the HSM, root, intermediates,
//! delegated OCSP and CRL signers, the ARL revoking an intermediate) checked with openssl, and
//! the refusals: wrong PIN, missing key, a key of the wrong type, an existing output, a revoked
//! certificate the root did not issue.

mod common;

use common::ceremony::{
    Ceremony, INTERMEDIATE_KEY, ISSUING_TOKEN, PIN_ENV, ROOT_TOKEN, days_from_now, years_from_now,
};

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl failed: {text}");
    text
}

#[test]
fn a_whole_ceremony_verifies_with_openssl() {
    let Some(c) = Ceremony::new() else { return };
    let printed = c.generate_key(ROOT_TOKEN, "root-x1", "01", "ecdsa-p384");
    assert!(printed.contains("SPKI SHA-256: "), "{printed}");
    // The printed hash is the public key file's.
    ok(&c.openssl(&[
        "pkey",
        "-pubin",
        "-in",
        "root-x1.pub.pem",
        "-outform",
        "DER",
        "-out",
        "root-x1.pub.der",
    ]));
    let hash = ok(&c.openssl(&["dgst", "-sha256", "-r", "root-x1.pub.der"]));
    let hash = hash.split_whitespace().next().unwrap();
    assert!(printed.contains(hash), "{printed} does not show {hash}");

    c.generate_key(ISSUING_TOKEN, INTERMEDIATE_KEY, "02", "ecdsa-p256");
    c.generate_key(ISSUING_TOKEN, "int-r1", "03", "rsa-2048");
    let root = c.root();
    assert!(root.contains("about to sign a self-signed ROOT"), "{root}");
    assert!(
        root.contains("CN=Cairn Test Root X1,O=Cairn Test,C=DE"),
        "{root}"
    );
    c.intermediate(INTERMEDIATE_KEY, "ecdsa-p256", "Cairn Test E1");
    let rsa = c.intermediate("int-r1", "rsa-2048", "Cairn Test R1");
    assert!(rsa.contains("rsa-2048"), "{rsa}");

    // An OCSP signer for the intermediate, from a CSR made by openssl (its key is a file here:
    // a responder key can live with the responder).
    ok(&c.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ocsp.key",
        "-subj",
        "/CN=ignored",
        "-out",
        "ocsp.csr",
    ]));
    let ocsp = c.run_ok(
        "ocsp",
        &format!(
            "[ocsp_signer]\ncommon_name = \"Cairn Test E1 OCSP\"\nnot_before = \"{}\"\nnot_after = \"{}\"\n\
             output = \"ocsp.pem\"\n[ocsp_signer.issuer]\ncertificate = \"int-e1.pem\"\n\
             [ocsp_signer.issuer.key]\n{}[ocsp_signer.subject_key]\ncsr = \"ocsp.csr\"\nalgorithm = \"ecdsa-p256\"\n",
            years_from_now(0),
            days_from_now(60),
            c.key(ISSUING_TOKEN, INTERMEDIATE_KEY)
        ),
    );
    assert!(ocsp.contains("OCSP RESPONDER"), "{ocsp}");
    // A delegated CRL signer for the root, from a public key.
    ok(&c.openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "crl.key",
    ]));
    ok(&c.openssl(&["pkey", "-in", "crl.key", "-pubout", "-out", "crl.pub.pem"]));
    c.run_ok(
        "crl-signer",
        &format!(
            "[crl_signer]\ncommon_name = \"Cairn Test Root X1 CRL signer\"\nnot_before = \"{}\"\n\
             not_after = \"{}\"\noutput = \"crl-signer.pem\"\n[crl_signer.issuer]\ncertificate = \"root.pem\"\n\
             [crl_signer.issuer.key]\n{}[crl_signer.subject_key]\npublic_key = \"crl.pub.pem\"\nalgorithm = \"ecdsa-p384\"\n",
            years_from_now(0),
            years_from_now(1),
            c.key(ROOT_TOKEN, "root-x1")
        ),
    );
    let arl = c.arl("root.crl", 1, &["int-r1.pem"]);
    assert!(arl.contains("Cairn Test R1 serial"), "{arl}");

    // openssl agrees with every output.
    for (cert, untrusted) in [
        ("root.pem", None),
        ("int-e1.pem", None),
        ("int-r1.pem", None),
        ("crl-signer.pem", None),
        ("ocsp.pem", Some("int-e1.pem")),
    ] {
        let mut args = vec!["verify", "-x509_strict", "-CAfile", "root.pem"];
        if let Some(u) = untrusted {
            args.extend(["-untrusted", u]);
        }
        args.push(cert);
        let out = ok(&c.openssl(&args));
        assert!(out.contains(&format!("{cert}: OK")), "{out}");
    }
    let out = ok(&c.openssl(&[
        "crl", "-in", "root.crl", "-CAfile", "root.pem", "-noout", "-verify",
    ]));
    assert!(out.contains("verify OK"), "{out}");
    let text = ok(&c.openssl(&["crl", "-in", "root.crl", "-noout", "-text"]));
    let serial = ok(&c.openssl(&["x509", "-in", "int-r1.pem", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(
        text.to_uppercase().contains(&serial.to_uppercase()),
        "{serial} not in {text}"
    );
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains("Only CA Certificates"), "{text}");
    let ocsp_text = ok(&c.openssl(&["x509", "-in", "ocsp.pem", "-noout", "-text"]));
    assert!(
        ocsp_text.contains("OCSP Signing") && ocsp_text.contains("OCSP No Check"),
        "{ocsp_text}"
    );
    assert!(
        ocsp_text.contains("Subject: CN = Cairn Test E1 OCSP"),
        "the file's name, not the CSR's is not used: {ocsp_text}"
    );
    // With the ARL, the revoked intermediate fails and the other passes.
    let revoked = c.openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-CRLfile",
        "root.crl",
        "int-r1.pem",
    ]);
    assert!(!revoked.status.success());
    assert!(
        String::from_utf8_lossy(&revoked.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&revoked.stderr).contains("certificate revoked")
    );
    let good = ok(&c.openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        "root.pem",
        "-CRLfile",
        "root.crl",
        "int-e1.pem",
    ]));
    assert!(good.contains("int-e1.pem: OK"), "{good}");
}

#[test]
fn refusals_are_one_line_and_write_nothing() {
    let Some(c) = Ceremony::new() else { return };
    c.generate_key(ROOT_TOKEN, "root-x1", "01", "ecdsa-p384");
    let root_step = |key_label: &str, algorithm: &str, output: &str| {
        format!(
            "[root]\nkey_algorithm = {algorithm:?}\nnot_before = \"{}\"\nnot_after = \"{}\"\n\
             output = {output:?}\n[root.key]\n{}[root.subject]\ncommon_name = \"Cairn Test Root X1\"\n",
            years_from_now(0),
            years_from_now(10),
            c.key(ROOT_TOKEN, key_label)
        )
    };

    // A key of another type than the file says: refused before signing.
    let err = c.run_err("mismatch", &root_step("root-x1", "rsa-4096", "r.pem"));
    assert!(
        err.contains("refusing to sign") && err.contains("ecdsa-p384"),
        "{err}"
    );
    // A missing key.
    let err = c.run_err("missing", &root_step("no-such-key", "ecdsa-p384", "r.pem"));
    assert!(
        err.contains("no such private key") && err.contains("no-such-key"),
        "{err}"
    );
    // A wrong PIN.
    let out = c
        .cairn()
        .env(PIN_ENV, "0000")
        .arg("ceremony")
        .arg(c.path("mismatch.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("PIN is incorrect"), "{err}");
    // A PIN in the file is refused as an unknown field.
    let err = c.run_err(
        "pin-in-file",
        &root_step("root-x1", "ecdsa-p384", "r.pem")
            .replace("[root.key]\n", "[root.key]\npin = \"4711\"\n"),
    );
    assert!(
        err.contains("unknown field") && err.contains("pin"),
        "{err}"
    );
    assert!(!c.path("r.pem").exists(), "a refused step wrote its output");

    // A validity beyond the issuer's, and an existing output.
    c.run_ok("root", &root_step("root-x1", "ecdsa-p384", "root.pem"));
    let err = c.run_err("again", &root_step("root-x1", "ecdsa-p384", "root.pem"));
    assert!(err.contains("never overwrites"), "{err}");
    c.generate_key(ISSUING_TOKEN, INTERMEDIATE_KEY, "02", "ecdsa-p256");
    let long_int = format!(
        "[intermediate]\nnot_before = \"{}\"\nnot_after = \"{}\"\noutput = \"long.pem\"\n\
         [intermediate.issuer]\ncertificate = \"root.pem\"\n[intermediate.issuer.key]\n{}\
         [intermediate.subject_key]\npublic_key = \"{INTERMEDIATE_KEY}.pub.pem\"\nalgorithm = \"ecdsa-p256\"\n\
         [intermediate.subject]\ncommon_name = \"Too Long\"\n",
        years_from_now(0),
        years_from_now(11),
        c.key(ROOT_TOKEN, "root-x1")
    );
    let err = c.run_err("long", &long_int);
    assert!(err.contains("leaves the issuer's"), "{err}");
    // The subject key is not what the file says.
    let wrong_type = long_int
        .replace(&years_from_now(11), &years_from_now(5))
        .replace("algorithm = \"ecdsa-p256\"", "algorithm = \"ecdsa-p384\"");
    let err = c.run_err("wrong-type", &wrong_type);
    assert!(
        err.contains("ecdsa-p256 key") && err.contains("says ecdsa-p384"),
        "{err}"
    );
    // The issuer key is not the issuer certificate's.
    let wrong_issuer_key = long_int
        .replace(&years_from_now(11), &years_from_now(5))
        .replace(
            &c.key(ROOT_TOKEN, "root-x1"),
            &c.key(ISSUING_TOKEN, INTERMEDIATE_KEY),
        );
    let err = c.run_err("wrong-issuer-key", &wrong_issuer_key);
    assert!(
        err.contains("not the key of the issuer certificate"),
        "{err}"
    );
    assert!(!c.path("long.pem").exists());
    // A certificate the linter refuses (BR: CRL distribution points are http://) is refused
    // on its throwaway-key copy, before the HSM signs.
    let https_crl = long_int
        .replace(&years_from_now(11), &years_from_now(5))
        .replace(
            "[intermediate.issuer]",
            "crl_url = \"https://ca.example/root.crl\"\n[intermediate.issuer]",
        );
    let err = c.run_err("lint", &https_crl);
    assert!(
        err.contains("e_ext_crl_distribution_point_not_http") && err.contains("before signing"),
        "{err}"
    );
    assert!(!c.path("long.pem").exists());

    // An ARL may revoke only what the root issued: the root itself is not one of those... it is
    // self-issued, so use a certificate from another root.
    let other = tempfile::tempdir().unwrap();
    let key = cairn_x509::SigningKey::generate(cairn_x509::KeyAlgorithm::EcdsaP256).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let foreign = cairn_x509::build_root(
        &key,
        "Cairn Test Root X1",
        None,
        now,
        now + time::Duration::days(30),
    )
    .unwrap();
    let foreign_path = other.path().join("foreign.pem");
    std::fs::write(
        &foreign_path,
        cairn_x509::pem_encode("CERTIFICATE", &foreign),
    )
    .unwrap();
    let err = c.run_err(
        "arl-foreign",
        &format!(
            "[arl]\nnumber = 1\nthis_update = \"{}\"\nnext_update = \"{}\"\noutput = \"bad.crl\"\n\
             [arl.issuer]\ncertificate = \"root.pem\"\n[arl.issuer.key]\n{}\
             [[arl.revoked]]\ncertificate = {:?}\nrevoked_at = \"{}\"\nreason = \"key_compromise\"\n",
            years_from_now(0),
            days_from_now(30),
            c.key(ROOT_TOKEN, "root-x1"),
            foreign_path.display().to_string(),
            days_from_now(-1)
        ),
    );
    assert!(err.contains("was not issued by this root"), "{err}");
    assert!(!c.path("bad.crl").exists());
}
