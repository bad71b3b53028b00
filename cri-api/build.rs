//! Compiles the CRI proto and Corral's own `corral.v1` with protox (pure Rust), so no system `protoc` is needed.
//!
//! Besides the prost messages and tonic services, pbjson-build writes serde `Serialize` and
//! `Deserialize` impls for every `runtime.v1` message and enum, following the protobuf JSON
//! mapping (`runtime.v1.serde.rs`): corralctl reads crictl's config files with them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    println!("cargo:rerun-if-changed=proto/corral.proto");
    let fds = protox::compile(["api.proto", "corral.proto"], ["proto"])?;
    let mut serde = pbjson_build::Builder::new();
    for file in &fds.file {
        serde.register_file_descriptor(file.clone());
    }
    serde.build(&[".runtime.v1"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
