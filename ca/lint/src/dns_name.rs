//! dNSName syntax: lowercase LDH labels, a whole-label wildcard only on the left, no trailing
//! dot, no underscores, fully qualified (RFC 1034 §3.5, RFC 5280 §4.2.1.6, BR §7.1.2.7.12).

use crate::catalog::{self as lints, Lint};

/// Every rule `name` breaks, each at most once, with a detail naming the name.
pub(crate) fn problems(name: &str) -> Vec<(Lint, String)> {
    let mut out: Vec<(Lint, String)> = Vec::new();
    let mut add = |lint: Lint, why: &str| {
        if !out.iter().any(|(l, _)| l.name == lint.name) {
            out.push((lint, format!("dNSName {name:?}: {why}")));
        }
    };
    if name.is_empty() {
        add(lints::DNSNAME_EMPTY_LABEL, "empty name");
        return out;
    }
    if name.len() > 253 {
        add(lints::DNSNAME_TOO_LONG, "longer than 253 characters");
    }
    let body = match name.strip_suffix('.') {
        Some(body) => {
            add(lints::DNSNAME_TRAILING_DOT, "ends with a dot");
            body
        }
        None => name,
    };
    let labels: Vec<&str> = body.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            add(lints::DNSNAME_EMPTY_LABEL, "has an empty label");
            continue;
        }
        if label.len() > 63 {
            add(
                lints::DNSNAME_LABEL_TOO_LONG,
                "has a label over 63 characters",
            );
        }
        if label.contains('*') {
            if i > 0 {
                add(
                    lints::DNSNAME_WILDCARD_ONLY_IN_LEFT_LABEL,
                    "has a wildcard outside the leftmost label",
                );
            } else if *label != "*" {
                add(
                    lints::DNSNAME_LEFT_LABEL_WILDCARD_CORRECT,
                    "has a wildcard that is not the whole leftmost label",
                );
            }
            if *label == "*" {
                continue;
            }
        }
        for c in label.chars() {
            match c {
                'a'..='z' | '0'..='9' | '-' | '*' => {}
                'A'..='Z' => add(lints::DNSNAME_NOT_LOWERCASE, "has uppercase letters"),
                '_' => add(lints::DNSNAME_UNDERSCORE, "has an underscore"),
                _ => add(
                    lints::DNSNAME_BAD_CHARACTER_IN_LABEL,
                    "has a character other than a letter, digit or hyphen",
                ),
            }
        }
        if label.starts_with('-') || label.ends_with('-') {
            add(
                lints::DNSNAME_HYPHEN_AT_LABEL_EDGE,
                "has a label starting or ending with a hyphen",
            );
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if labels.len() < 2 || (!tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())) {
        add(
            lints::DNSNAME_NOT_FULLY_QUALIFIED,
            "is not a fully-qualified domain name (one label, or a numeric TLD)",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::problems;

    fn names(n: &str) -> Vec<&'static str> {
        problems(n).into_iter().map(|(l, _)| l.name).collect()
    }

    #[test]
    fn good_names_have_no_problems() {
        for n in [
            "example.com",
            "*.example.com",
            "a-b.example.co.uk",
            "xn--bcher-kva.example",
            "1.example.com",
        ] {
            assert!(names(n).is_empty(), "{n}: {:?}", names(n));
        }
    }

    #[test]
    fn each_bad_name_breaks_exactly_its_rule() {
        let cases = [
            ("Example.com", "e_dnsname_not_lowercase"),
            ("a_b.example.com", "e_dnsname_underscore"),
            ("example.com.", "e_dnsname_trailing_dot"),
            ("a..example.com", "e_dnsname_empty_label"),
            ("", "e_dnsname_empty_label"),
            ("a.*.example.com", "e_dnsname_wildcard_only_in_left_label"),
            ("f*o.example.com", "e_dnsname_left_label_wildcard_correct"),
            ("-a.example.com", "e_dnsname_hyphen_at_label_edge"),
            ("a b.example.com", "e_dnsname_bad_character_in_label"),
            ("localhost", "e_dnsname_not_fully_qualified"),
            ("1.2.3.4", "e_dnsname_not_fully_qualified"),
        ];
        for (n, lint) in cases {
            assert_eq!(names(n), vec![lint], "{n:?}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert_eq!(names(&long_label), vec!["e_dnsname_label_too_long"]);
        let long_name = format!("{}example.com", "abcdefghi.".repeat(25));
        assert_eq!(names(&long_name), vec!["e_dnsname_too_long"]);
    }
}
