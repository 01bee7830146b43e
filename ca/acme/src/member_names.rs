//! Request member names matched without regard to case, as Let's Encrypt and Pebble match them.
//!
//! Go's JSON decoder matches member names case-insensitively, so Go clients whose structs have
//! no JSON tags send `"Identifiers"`, `"Contact"`, `"Certificate"`, `"CSR"`, and Boulder and
//! Pebble accept them. Cairn does the same: before a payload is decoded into its message type,
//! each member whose name equals one of the type's members but for case is renamed to it (and
//! in newOrder, the members of each identifier to `type`/`value`). Two members that fold to
//! the same name are refused as a duplicate. Members that match nothing are ignored, as the
//! RFC's extensibility needs, and returned to the caller to log: none is dropped unseen.

use crate::error::{JwsError, shorten};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// Nested objects whose member names are folded too: (member, its objects' member names).
const NESTED: &[(&str, &[&str])] = &[("identifiers", &["type", "value"])];

/// Renames `obj`'s members to `T`'s names where they differ only by ASCII case; returns the
/// names of the members `T` does not know.
pub(crate) fn fold<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
) -> Result<Vec<String>, JwsError> {
    let known = struct_members::<T>();
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let unknown = fold_object(obj, known)?;
    for (member, inner) in NESTED {
        if !known.contains(member) {
            continue;
        }
        if let Some(Value::Array(items)) = obj.get_mut(*member) {
            for item in items {
                if let Value::Object(o) = item {
                    fold_object(o, inner)?;
                }
            }
        }
    }
    Ok(unknown)
}

fn fold_object(obj: &mut Map<String, Value>, known: &[&str]) -> Result<Vec<String>, JwsError> {
    let mut unknown = Vec::new();
    let names: Vec<String> = obj.keys().cloned().collect();
    for name in names {
        if known.contains(&name.as_str()) {
            continue;
        }
        match known.iter().find(|k| k.eq_ignore_ascii_case(&name)) {
            Some(canonical) => {
                if obj.contains_key(*canonical) {
                    return Err(JwsError::InvalidPayload(format!(
                        "members {:?} and {canonical:?} are the same member",
                        shorten(&name)
                    )));
                }
                if let Some(v) = obj.remove(&name) {
                    obj.insert((*canonical).to_owned(), v);
                }
            }
            None => unknown.push(shorten(&name)),
        }
    }
    Ok(unknown)
}

/// The member names of struct `T` as serde knows them (after `rename_all`), read by asking `T`
/// to deserialize itself from a deserializer that only records what it is asked for. Empty for
/// types that are not structs.
fn struct_members<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut members: &'static [&'static str] = &[];
    let _ = T::deserialize(MemberNames(&mut members));
    members
}

struct MemberNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for MemberNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("member names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::messages::{NewAccount, NewOrder};
    use serde_json::json;

    fn folded<T: DeserializeOwned>(v: Value) -> (Value, Vec<String>) {
        let Value::Object(mut obj) = v else {
            unreachable!()
        };
        let unknown = fold::<T>(&mut obj).unwrap();
        (Value::Object(obj), unknown)
    }

    #[test]
    fn go_style_member_names_fold_to_the_acme_names() {
        let (v, unknown) = folded::<NewAccount>(json!({
            "Contact": ["mailto:a@cairn-ca.net"],
            "TermsOfServiceAgreed": true,
            "Extra": 1,
        }));
        assert_eq!(
            v,
            json!({"contact": ["mailto:a@cairn-ca.net"], "termsOfServiceAgreed": true, "Extra": 1})
        );
        assert_eq!(unknown, ["Extra"]);
        let (v, unknown) = folded::<NewOrder>(json!({
            "Identifiers": [{"Type": "dns", "Value": "a.cairn-ca.net"}],
        }));
        assert_eq!(
            v,
            json!({"identifiers": [{"type": "dns", "value": "a.cairn-ca.net"}]})
        );
        assert!(unknown.is_empty());
    }

    #[test]
    fn two_spellings_of_one_member_are_refused() {
        let Value::Object(mut obj) = json!({"contact": [], "Contact": []}) else {
            unreachable!()
        };
        assert!(fold::<NewAccount>(&mut obj).is_err());
    }
}
