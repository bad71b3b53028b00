//! Compiles the CRI proto and Corral's own `corral.v1` with protox (pure Rust), so no system `protoc` is needed.
//!
//! Besides the prost messages and tonic services, pbjson-build writes serde `Serialize` and
//! `Deserialize` impls for every `runtime.v1` message and enum, following the protobuf JSON
//! mapping (`runtime.v1.serde.rs`): corralctl reads crictl's config files with them.
//!
//! The servers and the clients are generated with different codecs: the servers with
//! `crate::codec::RequestCodec` (a request that does not decode is INVALID_ARGUMENT), the clients
//! with tonic-prost's own (a response that does not decode stays INTERNAL). tonic-prost-build
//! takes one codec per run, so one run's service generator is two of its generators in turn.

use prost_build::{Service, ServiceGenerator};

/// Runs each generator on every service, in turn.
struct Both(Vec<Box<dyn ServiceGenerator>>);

impl ServiceGenerator for Both {
    fn generate(&mut self, service: Service, buf: &mut String) {
        for g in &mut self.0 {
            g.generate(service.clone(), buf);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        for g in &mut self.0 {
            g.finalize(buf);
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        for g in &mut self.0 {
            g.finalize_package(package, buf);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    println!("cargo:rerun-if-changed=proto/corral.proto");
    let fds = protox::compile(["api.proto", "corral.proto"], ["proto"])?;
    let mut serde = pbjson_build::Builder::new();
    for file in &fds.file {
        serde.register_file_descriptor(file.clone());
    }
    serde.build(&[".runtime.v1"])?;
    let clients = tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .service_generator();
    let servers = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .codec_path("crate::codec::RequestCodec")
        .service_generator();
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(Both(vec![clients, servers])));
    // Neither client nor server here: the service generator above makes both.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
