//! Generated protobuf types, gRPC clients and servers for every ekspertbistand contract
//! (`proto/ekspertbistand/v1`), plus the file descriptor set that gRPC reflection serves.
//!
//! The generated code is not hand-edited; change the `.proto` files instead.

/// Package `ekspertbistand.v1`: every service, event and shared type.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("ekspertbistand.v1");
}

/// Encoded `FileDescriptorSet` of all contracts, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("ekspertbistand_descriptor");

pub mod convert;
pub mod events;
