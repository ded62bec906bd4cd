//! Generates the Rust types, gRPC clients and servers from `proto/` and writes a file
//! descriptor set for gRPC reflection. Uses the protoc shipped by `protoc-bin-vendored`, so a
//! fresh machine needs no system protoc.

use std::{error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let package_dir = proto_root.join("ekspertbistand/v1");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&package_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` impls give each event its full type name for the envelope.
    config.enable_type_names();

    let includes = [proto_root.clone(), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("ekspertbistand_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;

    println!("cargo:rerun-if-changed={}", package_dir.display());
    Ok(())
}
