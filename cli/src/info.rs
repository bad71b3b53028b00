//! Runtime information commands: `version`, `info`.

use anyhow::Context;
use clap::{Args, ValueEnum};
use corral_cri_api::v1;

use crate::client::{Cri, Deadline};
use crate::output::{self, Format};

/// The CRI API version this client speaks, sent in `VersionRequest` like crictl.
const CRI_API_VERSION: &str = "v1";

/// Output format of `info`: a document only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Json,
    Yaml,
}

/// `info`: show the runtime's status and configuration.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value = "json")]
    output: InfoFormat,
    /// Do not ask for verbose information (the runtime's `info` map).
    #[arg(short, long)]
    quiet: bool,
}

pub async fn version(cri: &Cri) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let request = v1::VersionRequest {
        version: CRI_API_VERSION.to_owned(),
    };
    let response = cri
        .call("Version", Deadline::Call, request, |r| client.version(r))
        .await
        .context("getting the runtime version")?;
    print!("{}", version_text(&response));
    Ok(())
}

/// crictl's layout (Go `Println` puts a second space after each colon).
fn version_text(response: &v1::VersionResponse) -> String {
    format!(
        "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}\n",
        response.version,
        response.runtime_name,
        response.runtime_version,
        response.runtime_api_version
    )
}

pub async fn info(cri: &Cri, args: InfoArgs) -> anyhow::Result<()> {
    let mut client = cri.runtime().await?;
    let request = v1::StatusRequest {
        verbose: !args.quiet,
    };
    let response = cri
        .call("Status", Deadline::Call, request, |r| client.status(r))
        .await
        .context("getting status of runtime")?;
    let format = match args.output {
        InfoFormat::Json => Format::Json,
        InfoFormat::Yaml => Format::Yaml,
    };
    println!("{}", output::render(&info_document(&response), format)?);
    Ok(())
}

/// `{"status": …, "runtimeHandlers": […], "features": {…}, <info keys>…}` as crictl builds it.
fn info_document(response: &v1::StatusResponse) -> serde_json::Value {
    let status = response
        .status
        .as_ref()
        .map_or(serde_json::Value::Null, output::runtime_status_json);
    let mut fields = vec![("status", status)];
    if !response.runtime_handlers.is_empty() {
        fields.push((
            "runtimeHandlers",
            output::runtime_handlers_json(&response.runtime_handlers),
        ));
    }
    if let Some(features) = &response.features {
        fields.push(("features", output::runtime_features_json(features)));
    }
    output::status_document(fields, &response.info)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn version_matches_crictl() {
        let response = v1::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "corral".into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: "v1".into(),
        };
        assert_eq!(
            version_text(&response),
            "Version:  0.1.0\nRuntimeName:  corral\nRuntimeVersion:  0.1.0\nRuntimeApiVersion:  v1\n"
        );
    }

    #[test]
    fn info_document_merges_status_and_info() {
        let response = v1::StatusResponse {
            status: Some(v1::RuntimeStatus {
                conditions: vec![v1::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: "cni config uninitialized".into(),
                }],
            }),
            info: HashMap::from([
                (
                    "config".to_owned(),
                    r#"{"root": "/var/lib/corral"}"#.to_owned(),
                ),
                ("lastCNILoadStatus".to_owned(), "OK".to_owned()),
            ]),
            runtime_handlers: vec![],
            features: None,
        };
        assert_eq!(
            info_document(&response),
            json!({
                "status": { "conditions": [{
                    "type": "NetworkReady",
                    "status": false,
                    "reason": "NetworkPluginNotReady",
                    "message": "cni config uninitialized",
                }]},
                "config": { "root": "/var/lib/corral" },
                "lastCNILoadStatus": "OK",
            })
        );
    }
}
