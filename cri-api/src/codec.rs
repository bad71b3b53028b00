//! The codec of the generated servers: tonic's prost codec, except that a request that does
//! not decode is the client's fault.
//!
//! tonic-prost answers a message that is not valid protobuf (a string field that is not UTF-8,
//! a truncated field, a bad wire type) with INTERNAL, the code gRPC reserves for the server's
//! own failures. A server receiving such a request answers INVALID_ARGUMENT instead, with
//! prost's description, which names the message and field where decoding failed
//! (`Mount.host_path: ContainerConfig.mounts: CreateContainerRequest.config: invalid string
//! value: data is not UTF-8 encoded`, innermost first).
//!
//! Only the servers use it (`build.rs` generates the clients with tonic-prost's codec): for a
//! client, a response that does not decode is still INTERNAL.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`ProstCodec`] whose decoder answers INVALID_ARGUMENT for a message that does not decode.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        RequestCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _pd: PhantomData }
    }
}

/// Decodes a request; see [`RequestCodec`].
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(invalid_request)
    }
}

/// The status for a request that does not decode: INVALID_ARGUMENT with prost's description
/// (which starts `failed to decode Protobuf message: ` and names the message and field).
pub fn invalid_request(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("malformed request: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_that_is_not_utf8_names_its_field() {
        // CreateContainerRequest { config (2): ContainerConfig { mounts (7): Mount {
        // host_path (2): [0xff] } } }
        let mount = [0x12, 0x01, 0xff];
        let mut config = vec![0x3a, mount.len() as u8];
        config.extend_from_slice(&mount);
        let mut request = vec![0x12, config.len() as u8];
        request.extend_from_slice(&config);
        let err = crate::v1::CreateContainerRequest::decode(request.as_slice()).unwrap_err();
        let status = invalid_request(err);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        for part in [
            "Mount.host_path",
            "ContainerConfig.mounts",
            "CreateContainerRequest.config",
            "UTF-8",
        ] {
            assert!(status.message().contains(part), "{}", status.message());
        }
    }
}
