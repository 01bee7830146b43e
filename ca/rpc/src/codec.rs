//! A tonic codec that carries serde types as JSON in gRPC frames.

use bytes::{Buf, BufMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Encodes `E` and decodes `D` as JSON.
#[derive(Debug)]
pub struct JsonCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Default for JsonCodec<E, D> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<E, D> Codec for JsonCodec<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = JsonEncoder<E>;
    type Decoder = JsonDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        JsonEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        JsonDecoder(PhantomData)
    }
}

/// The encoding half of [`JsonCodec`].
#[derive(Debug)]
pub struct JsonEncoder<E>(PhantomData<fn(E)>);

impl<E: Serialize> Encoder for JsonEncoder<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        serde_json::to_writer(dst.writer(), &item)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }
}

/// A request already encoded as JSON, sent as it is: a client encodes a call's arguments once,
/// not again for each instance it tries.
#[derive(Debug, Clone)]
pub struct EncodedJson(pub bytes::Bytes);

/// Encodes [`EncodedJson`] by copying its bytes and decodes `D` as JSON.
#[derive(Debug)]
pub struct PreEncodedCodec<D>(PhantomData<fn() -> D>);

impl<D> Default for PreEncodedCodec<D> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<D: DeserializeOwned + Send + 'static> Codec for PreEncodedCodec<D> {
    type Encode = EncodedJson;
    type Decode = D;
    type Encoder = PreEncodedEncoder;
    type Decoder = JsonDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        PreEncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        JsonDecoder(PhantomData)
    }
}

/// The encoding half of [`PreEncodedCodec`].
#[derive(Debug)]
pub struct PreEncodedEncoder;

impl Encoder for PreEncodedEncoder {
    type Item = EncodedJson;
    type Error = Status;

    fn encode(&mut self, item: EncodedJson, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

/// The decoding half of [`JsonCodec`].
#[derive(Debug)]
pub struct JsonDecoder<D>(PhantomData<fn() -> D>);

impl<D: DeserializeOwned> Decoder for JsonDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        // The message is parsed from one slice (serde_json's reader path goes byte by byte):
        // the frame's bytes in place when they are contiguous, else copied out once.
        let len = src.remaining();
        let decoded = if src.chunk().len() == len {
            let decoded = serde_json::from_slice(src.chunk());
            src.advance(len);
            decoded
        } else {
            serde_json::from_slice(&src.copy_to_bytes(len))
        };
        decoded
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("message does not decode: {e}")))
    }
}
