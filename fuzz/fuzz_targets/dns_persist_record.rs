//! Fuzzes the dns-persist-01 record check (`cairn_va::check_persist_records`): TXT values read
//! from DNS, one per input line. Must never panic; a set that validates a wildcard also
//! validates the name itself; adding another CA's record never changes the verdict.
#![no_main]

use cairn_va::{CaaAccount, PersistSubject, check_persist_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let records: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let ids = ["ca.example".to_string(), "Other-CA.example.".to_string()];
    let account = CaaAccount {
        path: "/acme/acct/1".into(),
        prefixes: vec!["https://ca.example".into()],
    };
    let subject = |wildcard| PersistSubject {
        issuer_domain_names: &ids,
        account: &account,
        wildcard,
        now: 1_800_000_000,
    };
    let plain = check_persist_records(&records, &subject(false));
    let wild = check_persist_records(&records, &subject(true));
    if wild.is_ok() {
        assert!(plain.is_ok());
    }
    let mut more = records.clone();
    more.push("elsewhere.example; accounturi=https://ca.example/acme/acct/1".into());
    assert_eq!(
        check_persist_records(&more, &subject(false)).is_ok(),
        plain.is_ok()
    );
});
