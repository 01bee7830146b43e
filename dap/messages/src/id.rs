//! Identifier newtypes (task, report, batch, jobs), shown in URLs as unpadded URL-safe base64.

use crate::codec::{CodecError, Decode, Encode, Reader};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use std::str::FromStr;

/// The identifier text was not unpadded URL-safe base64 of the right length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0}")]
pub struct IdParseError(&'static str);

macro_rules! fixed_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The encoded length in bytes.
            pub const LEN: usize = $len;

            /// The identifier with these bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }

            /// The identifier's bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The identifier from a slice of exactly [`Self::LEN`] bytes.
            pub fn try_from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map($name)
            }
        }

        impl Encode for $name {
            fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
                out.extend_from_slice(&self.0);
                Ok(())
            }
        }

        impl Decode for $name {
            fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok($name(r.array()?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                URL_SAFE_NO_PAD
                    .decode(s)
                    .ok()
                    .and_then(|b| Self::try_from_slice(&b))
                    .ok_or(IdParseError(stringify!($name)))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_id!(
    /// `TaskID`: 32 bytes, globally unique.
    TaskId, 32
);
fixed_id!(
    /// `ReportID`: 16 random bytes chosen by the client; also the VDAF nonce.
    ReportId, 16
);
fixed_id!(
    /// `BatchID` of the leader-selected batch mode: 32 bytes chosen by the leader.
    BatchId, 32
);
fixed_id!(
    /// An aggregation job's identifier, chosen by the helper when it creates the job.
    AggregationJobId, 16
);
fixed_id!(
    /// A collection job's identifier, chosen by the leader when it creates the job.
    CollectionJobId, 16
);
fixed_id!(
    /// An aggregate share's identifier, chosen by the helper when it creates the resource.
    AggregateShareId, 16
);
fixed_id!(
    /// A batch bucket's checksum: XOR of SHA-256 over the report IDs it holds.
    BatchChecksum, 32
);

impl BatchChecksum {
    /// XORs `other` into `self`.
    pub fn combine(&mut self, other: &BatchChecksum) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a ^= b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = TaskId::from_bytes([7; 32]);
        let s = id.to_string();
        assert_eq!(s.parse::<TaskId>().unwrap(), id);
        assert!("short".parse::<TaskId>().is_err());
        assert!("!!!!".parse::<ReportId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
    }

    #[test]
    fn url_example_from_the_draft() {
        let hex = "f0163447364ccf1bc0e3affcca6873c9c381f64acdf9020662f83f46c07219e7";
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let id = TaskId::try_from_slice(&bytes).unwrap();
        assert_eq!(
            id.to_string(),
            "8BY0RzZMzxvA46_8ymhzycOB9krN-QIGYvg_RsByGec"
        );
    }
}
