//! Fuzzes http-01 redirect handling (`cairn_va::check_redirect_target`): a `Location` header
//! value, resolved against the current URL, is checked before it is followed. Must never panic;
//! an accepted target is a plain host name on port 80 or 443 over http or https, never an IP
//! literal.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(location) = std::str::from_utf8(data) else {
        return;
    };
    let current = url::Url::parse("http://example.com/.well-known/acme-challenge/token")
        .expect("a valid URL");
    if let Ok(host) = cairn_va::check_redirect_target(&current, location) {
        assert!(
            host.parse::<std::net::IpAddr>().is_err(),
            "{location:?} -> {host}"
        );
        assert!(
            !host.is_empty() && !host.contains('*'),
            "{location:?} -> {host}"
        );
        let next = current.join(location).expect("accepted targets parse");
        assert!(matches!(next.scheme(), "http" | "https"));
        assert!(matches!(next.port_or_known_default(), Some(80 | 443)));
    }
});
