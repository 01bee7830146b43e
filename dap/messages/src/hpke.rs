//! HPKE wire types: `HpkeConfig`, `HpkeConfigList`, `HpkeCiphertext` and the `Role` enum.

use crate::codec::{CodecError, Decode, Encode, LengthPrefix, Reader, put_items, put_opaque};

/// `HpkeConfigId`: names one of an aggregator's HPKE configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HpkeConfigId(pub u8);

/// `HpkeKemId` (RFC 9180 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HpkeKemId(pub u16);

/// `HpkeKdfId` (RFC 9180 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HpkeKdfId(pub u16);

/// `HpkeAeadId` (RFC 9180 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HpkeAeadId(pub u16);

impl HpkeKemId {
    /// DHKEM(X25519, HKDF-SHA256), the DAP-mandatory KEM.
    pub const X25519_HKDF_SHA256: HpkeKemId = HpkeKemId(0x0020);
}

impl HpkeKdfId {
    /// HKDF-SHA256.
    pub const HKDF_SHA256: HpkeKdfId = HpkeKdfId(0x0001);
}

impl HpkeAeadId {
    /// AES-128-GCM.
    pub const AES_128_GCM: HpkeAeadId = HpkeAeadId(0x0001);
}

/// `struct { id; kem_id; kdf_id; aead_id; public_key<1..2^16-1>; } HpkeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeConfig {
    /// The configuration's identifier.
    pub id: HpkeConfigId,
    /// The KEM.
    pub kem_id: HpkeKemId,
    /// The KDF.
    pub kdf_id: HpkeKdfId,
    /// The AEAD.
    pub aead_id: HpkeAeadId,
    /// The serialized public key.
    pub public_key: Vec<u8>,
}

impl Encode for HpkeConfig {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.id.0.encode(out)?;
        self.kem_id.0.encode(out)?;
        self.kdf_id.0.encode(out)?;
        self.aead_id.0.encode(out)?;
        put_opaque(out, LengthPrefix::U16, 1, &self.public_key, "public_key")
    }
}

impl Decode for HpkeConfig {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(HpkeConfig {
            id: HpkeConfigId(r.u8()?),
            kem_id: HpkeKemId(r.u16()?),
            kdf_id: HpkeKdfId(r.u16()?),
            aead_id: HpkeAeadId(r.u16()?),
            public_key: r.opaque(LengthPrefix::U16, 1, "public_key")?,
        })
    }
}

/// `HpkeConfig HpkeConfigList<10..2^16-1>`: at least one configuration, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeConfigList(pub Vec<HpkeConfig>);

impl Encode for HpkeConfigList {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if self.0.is_empty() {
            return Err(CodecError::LengthOutOfRange {
                field: "HpkeConfigList",
            });
        }
        put_items(out, LengthPrefix::U16, &self.0, "HpkeConfigList")
    }
}

impl Decode for HpkeConfigList {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let list: Vec<HpkeConfig> = r.items(LengthPrefix::U16)?;
        if list.is_empty() {
            return Err(CodecError::LengthOutOfRange {
                field: "HpkeConfigList",
            });
        }
        Ok(HpkeConfigList(list))
    }
}

/// `struct { config_id; enc<1..2^16-1>; payload<1..2^32-1>; } HpkeCiphertext`.
#[derive(Clone, PartialEq, Eq)]
pub struct HpkeCiphertext {
    /// The recipient's configuration.
    pub config_id: HpkeConfigId,
    /// The encapsulated key.
    pub enc: Vec<u8>,
    /// The AEAD ciphertext with its tag.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for HpkeCiphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpkeCiphertext")
            .field("config_id", &self.config_id)
            .field("enc_len", &self.enc.len())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Encode for HpkeCiphertext {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.config_id.0.encode(out)?;
        put_opaque(out, LengthPrefix::U16, 1, &self.enc, "enc")?;
        put_opaque(out, LengthPrefix::U32, 1, &self.payload, "payload")
    }
}

impl Decode for HpkeCiphertext {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(HpkeCiphertext {
            config_id: HpkeConfigId(r.u8()?),
            enc: r.opaque(LengthPrefix::U16, 1, "enc")?,
            payload: r.opaque(LengthPrefix::U32, 1, "payload")?,
        })
    }
}

/// `Role`: who sends or receives a message; part of the HPKE `info` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The collector (0).
    Collector,
    /// A client (1).
    Client,
    /// The leader (2).
    Leader,
    /// The helper (3).
    Helper,
}

impl Role {
    /// The codepoint.
    pub fn code(self) -> u8 {
        match self {
            Role::Collector => 0,
            Role::Client => 1,
            Role::Leader => 2,
            Role::Helper => 3,
        }
    }
}

impl Encode for Role {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.code().encode(out)
    }
}

impl Decode for Role {
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8()? {
            0 => Ok(Role::Collector),
            1 => Ok(Role::Client),
            2 => Ok(Role::Leader),
            3 => Ok(Role::Helper),
            v => Err(CodecError::UnknownValue {
                field: "Role",
                value: u64::from(v),
            }),
        }
    }
}
