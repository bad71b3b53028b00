//! Manifest values that would become setuid files, bad ids or paths (issue 15, items 10 and 12):
//! refused at apply naming the field, as the API server does; and API data volumes reach the
//! container on `nosuid,nodev` mounts.

use crate::common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::kube::kube_env;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn setuid_modes_and_negative_ids_are_refused_at_apply() -> Result<()> {
    let mut k = kube_env().await?;
    let cases = [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: IMAGE}\n  volumes:\n  - name: v\n    configMap: {name: cfg, defaultMode: 2541}\n",
            "spec.volumes[0].configMap.defaultMode: Invalid value: 2541: must be a number between 0 and 0777 (octal), both inclusive",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: IMAGE}\n  volumes:\n  - name: v\n    downwardAPI: {items: [{path: pname, mode: 3565, fieldRef: {fieldPath: metadata.name}}]}\n",
            "spec.volumes[0].downwardAPI.items[0].mode: Invalid value: 3565",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  securityContext: {fsGroup: -5}\n  containers:\n  - {name: a, image: IMAGE}\n",
            "spec.securityContext.fsGroup: Invalid value: -5: must be greater than or equal to 0",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: IMAGE\n    securityContext: {runAsUser: -1}\n",
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1",
        ),
    ];
    for (yaml, want) in cases {
        let err = k.apply(yaml).await.expect_err(yaml);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{yaml}: {err:?}");
        assert!(
            err.message().contains(want),
            "{yaml}: {:?} lacks {want:?}",
            err.message()
        );
    }
    assert!(k.pods().await?.is_empty(), "a refused pod was stored");
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn config_map_volumes_are_mounted_nosuid_nodev() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r##"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {tool: "#!/bin/sh\nid -u\n"}
---
apiVersion: v1
kind: Pod
metadata: {name: vols}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [sleep, "3600"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: info, mountPath: /etc/info}
  volumes:
  - name: cfg
    configMap: {name: cfg, defaultMode: 493}
  - name: info
    downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
"##,
    )
    .await?;
    k.wait_phase("vols", "Running", MINUTE).await?;
    let (code, mountinfo) = k
        .exec("vols", "main", &["cat", "/proc/self/mountinfo"])
        .await?;
    assert_eq!(code, 0);
    for point in ["/etc/cfg", "/etc/info"] {
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .with_context(|| format!("{point} not mounted:\n{mountinfo}"))?;
        let opts: Vec<&str> = line
            .split(' ')
            .nth(5)
            .unwrap_or_default()
            .split(',')
            .collect();
        assert!(
            opts.contains(&"nosuid") && opts.contains(&"nodev"),
            "{point}: {line}"
        );
    }
    k.delete_all_and_assert_clean().await
}
