//! Bandwidth limits stay with the CNI `bandwidth` plugin, run alone and only for pods whose
//! annotations ask for them: traffic shaping (a tbf qdisc on the host end, an ifb device
//! for egress) is the plugin's whole job, rarely used, and would be the largest part of an
//! in-process network. The plugin finds the host end from the result we give it as
//! `prevResult`.

use corral_cni::{Attachment, NetworkList, Plugins};
use serde_json::{Value, json};

use crate::network::NetworkError;

fn list(network: &str) -> Result<NetworkList, NetworkError> {
    let doc = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [{ "type": "bandwidth", "capabilities": { "bandwidth": true } }],
    });
    Ok(NetworkList::from_json(
        &doc,
        std::path::Path::new("built-in bandwidth"),
    )?)
}

/// Whether the pod asked for limits.
pub fn wanted(att: &Attachment) -> bool {
    att.runtime_config.contains_key("bandwidth")
}

pub async fn add(
    plugins: &Plugins,
    network: &str,
    att: &Attachment,
    result: &Value,
) -> Result<(), NetworkError> {
    corral_cni::chain::add_after(&list(network)?, plugins, att, Some(result.clone())).await?;
    Ok(())
}

pub async fn del(
    plugins: &Plugins,
    network: &str,
    att: &Attachment,
    result: Option<&Value>,
) -> Result<(), NetworkError> {
    corral_cni::del(&list(network)?, plugins, att, result).await?;
    Ok(())
}
