//! Generates the message types from `proto/costream.proto` (the single source of truth) with a
//! pure-Rust protobuf compiler, so that no `protoc` is needed: prost for the binary encoding,
//! pbjson for protobuf's canonical JSON mapping.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with `env!`: a build script compiled for a checkout at
    // another path (a shared target directory) must still find this checkout's schema.
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_dir.join("costream.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let descriptors = protox::compile([&proto], [&proto_dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_bytes = prost::Message::encode_to_vec(&descriptors);

    prost_build::Config::new()
        .out_dir(&out)
        .btree_map(["."])
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .out_dir(&out)
        .register_descriptors(&descriptor_bytes)?
        .build(&[".costream.v1"])?;
    Ok(())
}
