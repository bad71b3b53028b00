//! ADD and DEL over a network configuration list.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::invoke::{CallEnv, Plugins};
use crate::{Error, NetworkList};

/// One attachment of a network to a sandbox: everything ADD was given, and so everything a
/// later DEL needs (callers persist it with the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the pinned network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs (after `IgnoreUnknown=1`). Keys and values hold no `;` or `=`.
    pub args: Vec<(String, String)>,
    /// Runtime config by capability name (`portMappings`, `dns`, `bandwidth`, ...); a plugin
    /// gets the ones it declares in its `capabilities`.
    pub runtime_config: Map<String, Value>,
}

impl Attachment {
    fn cni_args(&self) -> String {
        let mut s = String::from("IgnoreUnknown=1");
        for (k, v) in &self.args {
            s.push(';');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    fn env<'a>(&'a self, command: &'static str, args: &'a str) -> CallEnv<'a> {
        CallEnv {
            command,
            container_id: &self.container_id,
            netns: &self.netns,
            ifname: &self.ifname,
            args,
        }
    }
}

/// Whether `s` can be a `CNI_ARGS` key or value.
pub fn valid_arg(s: &str) -> bool {
    !s.contains([';', '=']) && !s.chars().any(char::is_control)
}

/// What plugin `plugin` of `list` reads on stdin.
fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    att: &Attachment,
    prev: Option<&Value>,
) -> Value {
    let mut cfg = plugin.clone();
    cfg.insert("cniVersion".into(), list.cni_version.clone().into());
    cfg.insert("name".into(), list.name.clone().into());
    let mut rc = Map::new();
    if let Some(Value::Object(caps)) = plugin.get("capabilities") {
        for (cap, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = att.runtime_config.get(cap)
            {
                rc.insert(cap.clone(), v.clone());
            }
        }
    }
    if !rc.is_empty() {
        cfg.insert("runtimeConfig".into(), Value::Object(rc));
    }
    if let Some(prev) = prev {
        cfg.insert("prevResult".into(), prev.clone());
    }
    Value::Object(cfg)
}

fn kind(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Runs ADD over the chain and returns the last plugin's result. When a plugin fails, DEL runs
/// over the whole chain (so no address or rule is left behind) before the ADD error is
/// returned.
pub async fn add(list: &NetworkList, plugins: &Plugins, att: &Attachment) -> Result<Value, Error> {
    add_after(list, plugins, att, None).await
}

/// [`add`], the first plugin getting `prev` as its `prevResult`: for a chain that continues
/// what something other than a plugin set up (the daemon's built-in network runs the
/// bandwidth plugin this way).
pub async fn add_after(
    list: &NetworkList,
    plugins: &Plugins,
    att: &Attachment,
    mut prev: Option<Value>,
) -> Result<Value, Error> {
    let args = att.cni_args();
    for plugin in &list.plugins {
        let cfg = plugin_config(list, plugin, att, prev.as_ref());
        let step = plugins
            .call(&list.name, kind(plugin), att.env("ADD", &args), &cfg)
            .await
            .and_then(|out| {
                serde_json::from_slice::<Value>(&out)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| Error::BadResult {
                        network: list.name.clone(),
                        plugin: kind(plugin).to_owned(),
                        command: "ADD",
                        msg: "did not print a JSON result".into(),
                    })
            });
        match step {
            Ok(result) => prev = Some(result),
            Err(e) => {
                if let Err(undo) = del(list, plugins, att, None).await {
                    tracing::warn!(error = %undo, "undoing a failed CNI ADD");
                }
                return Err(e);
            }
        }
    }
    Ok(prev.unwrap_or_else(|| Value::Object(Map::new())))
}

/// Runs DEL over the chain in reverse, each plugin given `result` (ADD's) as `prevResult`.
/// Every plugin is called even when one fails; the first failure is returned. DEL of what was
/// never added, or is already gone, succeeds (the plugins make it idempotent).
pub async fn del(
    list: &NetworkList,
    plugins: &Plugins,
    att: &Attachment,
    result: Option<&Value>,
) -> Result<(), Error> {
    let args = att.cni_args();
    let prev = result.filter(|_| list.cni_version.as_str() >= "0.4.0");
    let mut first = None;
    for plugin in list.plugins.iter().rev() {
        let cfg = plugin_config(list, plugin, att, prev);
        if let Err(e) = plugins
            .call(&list.name, kind(plugin), att.env("DEL", &args), &cfg)
            .await
        {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;
    use std::time::Duration;

    fn list(plugins: Value) -> NetworkList {
        let doc = json!({"cniVersion": "1.0.0", "name": "n", "plugins": plugins});
        NetworkList::parse(doc.to_string().as_bytes(), Path::new("t")).unwrap()
    }

    fn att() -> Attachment {
        let mut rc = Map::new();
        rc.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        rc.insert("dns".into(), json!({"servers": ["1.1.1.1"]}));
        Attachment {
            container_id: "c".into(),
            netns: "/proc/self/ns/net".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "p".into())],
            runtime_config: rc,
        }
    }

    #[test]
    fn plugins_get_only_their_capabilities_and_the_previous_result() {
        let l = list(
            json!([{"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": true}}]),
        );
        let prev = json!({"ips": []});
        let cfg = plugin_config(&l, &l.plugins[0], &att(), Some(&prev));
        assert_eq!(cfg["name"], "n");
        assert_eq!(cfg["cniVersion"], "1.0.0");
        assert_eq!(
            cfg["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080}]})
        );
        assert_eq!(cfg["prevResult"], prev);
        let plain = plugin_config(
            &l,
            &list(json!([{"type": "bridge"}])).plugins[0],
            &att(),
            None,
        );
        assert!(plain.get("runtimeConfig").is_none() && plain.get("prevResult").is_none());
        assert_eq!(att().cni_args(), "IgnoreUnknown=1;K8S_POD_NAME=p");
        assert!(
            valid_arg("kube-system") && !valid_arg("a;b") && !valid_arg("a=b") && !valid_arg("a\n")
        );
    }

    /// A fake chain logging each call to `log`: `ok` passes its prevResult on, `bad` fails.
    #[tokio::test]
    async fn a_failed_add_is_undone_in_reverse() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        for (name, tail) in [
            (
                "ok",
                r#"echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.9/24"}]}'"#,
            ),
            (
                "bad",
                r#"[ "$CNI_COMMAND" = DEL ] || { echo '{"code":11,"msg":"no"}'; exit 1; }"#,
            ),
        ] {
            let p = d.path().join(name);
            let body = format!(
                "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND {name}\" >> {}\n{tail}\n",
                log.display()
            );
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let plugins = Plugins {
            dirs: vec![d.path().to_path_buf()],
            timeout: Duration::from_secs(5),
        };
        let good = list(json!([{"type": "ok"}, {"type": "ok"}]));
        let r = add(&good, &plugins, &att()).await.unwrap();
        assert_eq!(crate::result::pod_ips(&r, "eth0").len(), 1);
        del(&good, &plugins, &att(), Some(&r)).await.unwrap();
        let failing = list(json!([{"type": "ok"}, {"type": "bad"}]));
        let e = add(&failing, &plugins, &att()).await.unwrap_err();
        assert!(
            e.to_string().contains("plugin \"bad\" ADD failed: no"),
            "{e}"
        );
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls,
            "ADD ok\nADD ok\nDEL ok\nDEL ok\nADD ok\nADD bad\nDEL bad\nDEL ok\n"
        );
    }
}
