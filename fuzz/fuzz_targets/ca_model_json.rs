//! Fuzzes the JSON form of the CA's model types as they cross the split deployment's RPCs
//! (orders, authorizations, accounts, certificates, EAB keys; DER and keys as base64 text or
//! number arrays): decoding must not panic, and whatever decodes must encode and decode again
//! to the same value.
#![no_main]

use cairn_core::{Account, Authorization, Certificate, EabKey, Order};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T>(data: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&value).expect("a decoded value encodes");
    let again: T = serde_json::from_slice(&json).expect("its encoding decodes");
    assert_eq!(again, value);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Order>(data);
    round_trip::<Authorization>(data);
    round_trip::<Account>(data);
    round_trip::<Certificate>(data);
    round_trip::<EabKey>(data);
});
