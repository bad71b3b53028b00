//! `label TYPE NAME k=v k2- [--overwrite]`: KubeService.Label after a Get, so that changing a
//! value without `--overwrite` fails with kubectl's message before anything is sent.

use std::collections::BTreeMap;

use clap::Args;
use corral_cri_api::corral;

use super::kind::Kind;
use super::{KubeError, decode};
use crate::client::{Cri, Deadline};

/// `label`: set (k=v) and remove (k-) labels of an object.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// pods (pod, po), configmaps (cm), secrets, namespaces (ns); or TYPE/NAME.
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,
    /// NAME (unless TYPE/NAME), then KEY=VALUE to set and KEY- to remove.
    #[arg(value_name = "NAME KEY=VAL KEY-")]
    pub args: Vec<String>,
    /// Allow changing a label that has a value already.
    #[arg(long)]
    pub overwrite: bool,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// The parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub names: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Splits the arguments as kubectl does: words with `=` set, words ending in `-` remove, the
/// rest name objects.
pub fn parse(resource: &str, args: &[String]) -> Result<Change, KubeError> {
    let (kind, name) = Kind::parse_ref(resource)?;
    let mut names: Vec<String> = name.into_iter().collect();
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for arg in args {
        if let Some((k, v)) = arg.split_once('=') {
            if k.is_empty() || v.contains('=') {
                return Err(KubeError::local(format!("invalid label spec: {arg}")));
            }
            set.insert(k.to_string(), v.to_string());
        } else if let Some(k) = arg.strip_suffix('-').filter(|k| !k.is_empty()) {
            remove.push(k.to_string());
        } else {
            names.push(arg.clone());
        }
    }
    if set.is_empty() && remove.is_empty() {
        return Err(KubeError::local("at least one label update is required"));
    }
    if remove.iter().any(|k| set.contains_key(k)) {
        return Err(KubeError::local(
            "can not both modify and remove a label in the same command",
        ));
    }
    if names.is_empty() {
        return Err(KubeError::local(
            "resource(s) were provided, but no name was specified",
        ));
    }
    Ok(Change {
        kind,
        names,
        set,
        remove,
    })
}

/// kubectl's check before changing a label's value.
pub fn check_overwrite(
    current: Option<&BTreeMap<String, String>>,
    set: &BTreeMap<String, String>,
    overwrite: bool,
) -> Result<(), KubeError> {
    if overwrite {
        return Ok(());
    }
    for (k, v) in set {
        if let Some(old) = current.and_then(|c| c.get(k))
            && old != v
        {
            return Err(KubeError::local(format!(
                "'{k}' already has a value ({old}), and --overwrite is false"
            )));
        }
    }
    Ok(())
}

/// The LabelRequest for one object.
pub fn request(c: &Change, namespace: &str, name: &str, overwrite: bool) -> corral::LabelRequest {
    corral::LabelRequest {
        object: Some(corral::ObjectRef {
            kind: c.kind.api_kind().into(),
            namespace: if c.kind.namespaced() {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }),
        set: c.set.clone().into_iter().collect(),
        remove: c.remove.clone(),
        overwrite,
    }
}

pub async fn label(cri: &Cri, args: LabelArgs) -> anyhow::Result<()> {
    let change = parse(&args.resource, &args.args)?;
    let namespace = super::namespace_or_default(args.namespace.as_deref());
    let mut client = cri.kube().await?;
    for name in &change.names {
        let target = Some((change.kind, name.as_str()));
        let get = corral::GetRequest {
            kind: change.kind.api_kind().into(),
            namespace: if change.kind.namespaced() {
                namespace.clone()
            } else {
                String::new()
            },
            name: name.clone(),
            ..Default::default()
        };
        let found = cri
            .call("Get", Deadline::Call, get, |r| client.get(r))
            .await
            .map_err(|e| KubeError::from_rpc(e, target))?;
        let Some(bytes) = found.objects.first() else {
            return Err(KubeError::not_found(change.kind, name).into());
        };
        let object = decode(bytes)?;
        check_overwrite(
            object.metadata().labels.as_ref(),
            &change.set,
            args.overwrite,
        )?;
        let req = request(&change, &namespace, name, args.overwrite);
        let resp = cri
            .call("Label", Deadline::Call, req, |r| client.label(r))
            .await
            .map_err(|e| KubeError::from_rpc(e, target))?;
        println!("{}/{name} {}", change.kind.singular(), resp.action);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_split_into_names_sets_and_removals() {
        let c = parse("pods", &args(&["web", "app=web", "tier-", "env="])).expect("parse");
        assert_eq!(c.kind, Kind::Pod);
        assert_eq!(c.names, ["web"]);
        assert_eq!(c.set.get("app").map(String::as_str), Some("web"));
        assert_eq!(c.set.get("env").map(String::as_str), Some(""));
        assert_eq!(c.remove, ["tier"]);
        let c = parse("pod/web", &args(&["a=b"])).expect("parse");
        assert_eq!(c.names, ["web"]);
        let err = |r: &str, a: &[&str]| parse(r, &args(a)).expect_err("error").to_string();
        assert_eq!(
            err("pods", &["web"]),
            "error: at least one label update is required"
        );
        assert_eq!(
            err("pods", &["web", "a=b", "a-"]),
            "error: can not both modify and remove a label in the same command"
        );
        assert_eq!(
            err("pods", &["web", "a=b=c"]),
            "error: invalid label spec: a=b=c"
        );
        assert_eq!(
            err("pods", &["a=b"]),
            "error: resource(s) were provided, but no name was specified"
        );
    }

    #[test]
    fn overwrite_is_needed_to_change_a_value() {
        let current: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let set: BTreeMap<String, String> = [("k".to_string(), "w".to_string())].into();
        assert_eq!(
            check_overwrite(Some(&current), &set, false)
                .expect_err("no overwrite")
                .to_string(),
            "error: 'k' already has a value (v), and --overwrite is false"
        );
        assert!(check_overwrite(Some(&current), &set, true).is_ok());
        let same: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        assert!(check_overwrite(Some(&current), &same, false).is_ok());
        assert!(check_overwrite(None, &set, false).is_ok());
    }

    #[test]
    fn requests_carry_the_object() {
        let c = parse("ns", &args(&["dev", "team=a", "old-"])).expect("parse");
        let r = request(&c, "default", "dev", true);
        let o = r.object.expect("object");
        assert_eq!(
            (o.kind.as_str(), o.namespace.as_str(), o.name.as_str()),
            ("Namespace", "", "dev")
        );
        assert_eq!(r.set.get("team").map(String::as_str), Some("a"));
        assert_eq!(r.remove, ["old"]);
        assert!(r.overwrite);
    }
}
