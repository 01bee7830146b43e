//! The TLS presentation-language codec (RFC 8446 §3) that every DAP message is written in.

use thiserror::Error;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before the message did.
    #[error("message truncated")]
    UnexpectedEnd,
    /// Bytes were left over after the message.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A length prefix or vector length is outside the range the field allows.
    #[error("length of {field} out of range")]
    LengthOutOfRange {
        /// The field whose length is wrong.
        field: &'static str,
    },
    /// An enumerated value is not one this implementation knows.
    #[error("unknown value {value} for {field}")]
    UnknownValue {
        /// The field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
}

/// A value with a TLS-syntax encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// The encoding of `self`.
    fn get_encoded(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

/// A value that can be read from its TLS-syntax encoding.
pub trait Decode: Sized {
    /// Reads one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError>;

    /// Decodes `bytes`, which must hold exactly one value.
    fn get_decoded(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// A cursor over bytes being decoded. Every read is bounds-checked; none panics.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(CodecError::TrailingBytes(n)),
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.bytes.len() {
            return Err(CodecError::UnexpectedEnd);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads a `uint8`.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a `uint16`.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a `uint32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a `uint64`.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a length prefix of `prefix` bytes (1, 2 or 4) and returns a reader over the body.
    pub fn sub(&mut self, prefix: LengthPrefix) -> Result<Reader<'a>, CodecError> {
        let len = match prefix {
            LengthPrefix::U8 => usize::from(self.u8()?),
            LengthPrefix::U16 => usize::from(self.u16()?),
            LengthPrefix::U32 => {
                usize::try_from(self.u32()?).map_err(|_| CodecError::UnexpectedEnd)?
            }
        };
        Ok(Reader::new(self.take(len)?))
    }

    /// Reads `opaque field<min..2^k-1>` with the given prefix.
    pub fn opaque(
        &mut self,
        prefix: LengthPrefix,
        min: usize,
        field: &'static str,
    ) -> Result<Vec<u8>, CodecError> {
        let sub = self.sub(prefix)?;
        if sub.bytes.len() < min {
            return Err(CodecError::LengthOutOfRange { field });
        }
        Ok(sub.bytes.to_vec())
    }

    /// Reads a length-prefixed vector of items.
    pub fn items<T: Decode>(&mut self, prefix: LengthPrefix) -> Result<Vec<T>, CodecError> {
        let mut sub = self.sub(prefix)?;
        sub.rest()
    }

    /// Reads items until the input ends (vectors whose length is the HTTP message length).
    pub fn rest<T: Decode>(&mut self) -> Result<Vec<T>, CodecError> {
        let mut v = Vec::new();
        while self.remaining() > 0 {
            v.push(T::decode(self)?);
        }
        Ok(v)
    }
}

/// The width of a vector's length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthPrefix {
    /// `<0..2^8-1>`
    U8,
    /// `<0..2^16-1>`
    U16,
    /// `<0..2^32-1>`
    U32,
}

/// Appends `bytes` with a length prefix; fails if they do not fit it or are shorter than `min`.
pub fn put_opaque(
    out: &mut Vec<u8>,
    prefix: LengthPrefix,
    min: usize,
    bytes: &[u8],
    field: &'static str,
) -> Result<(), CodecError> {
    if bytes.len() < min {
        return Err(CodecError::LengthOutOfRange { field });
    }
    put_len(out, prefix, bytes.len(), field)?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends a length-prefixed vector of items.
pub fn put_items<T: Encode>(
    out: &mut Vec<u8>,
    prefix: LengthPrefix,
    items: &[T],
    field: &'static str,
) -> Result<(), CodecError> {
    let mut body = Vec::new();
    for item in items {
        item.encode(&mut body)?;
    }
    put_opaque(out, prefix, 0, &body, field)
}

fn put_len(
    out: &mut Vec<u8>,
    prefix: LengthPrefix,
    len: usize,
    field: &'static str,
) -> Result<(), CodecError> {
    let err = || CodecError::LengthOutOfRange { field };
    match prefix {
        LengthPrefix::U8 => out.push(u8::try_from(len).map_err(|_| err())?),
        LengthPrefix::U16 => out.extend(u16::try_from(len).map_err(|_| err())?.to_be_bytes()),
        LengthPrefix::U32 => out.extend(u32::try_from(len).map_err(|_| err())?.to_be_bytes()),
    }
    Ok(())
}

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.push(*self);
        Ok(())
    }
}

impl Encode for u16 {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend(self.to_be_bytes());
        Ok(())
    }
}

impl Encode for u32 {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend(self.to_be_bytes());
        Ok(())
    }
}

impl Encode for u64 {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend(self.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(
            r.sub(LengthPrefix::U16).err(),
            Some(CodecError::UnexpectedEnd)
        );
        let mut r = Reader::new(&[0xff; 3]);
        assert_eq!(r.u32(), Err(CodecError::UnexpectedEnd));
    }

    #[test]
    fn opaque_enforces_minimum_and_maximum() {
        let mut out = Vec::new();
        assert!(put_opaque(&mut out, LengthPrefix::U8, 1, &[], "x").is_err());
        assert!(put_opaque(&mut out, LengthPrefix::U8, 0, &[0; 256], "x").is_err());
        let mut r = Reader::new(&[0]);
        assert!(r.opaque(LengthPrefix::U8, 1, "x").is_err());
    }
}
