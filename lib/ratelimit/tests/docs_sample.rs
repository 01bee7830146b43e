//! The sample configuration in `docs/rate-limits.md` parses and validates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_ratelimit::RateLimitConfig;

#[test]
fn the_documented_sample_config_is_valid() {
    let doc = include_str!("../../../docs/rate-limits.md");
    let sample = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in docs/rate-limits.md");
    let config: RateLimitConfig = toml::from_str(sample).unwrap();
    config.validate().unwrap();
    assert_eq!(config.overrides.len(), 3);
}
