//! The pod manager through `corral.v1.KubeService`: the issue's "must work" manifests (with the
//! busybox test image standing in for nginx and curl), bad manifests, deletion with a grace
//! period, nodeSelector, namespaces, and pods that survive a daemon restart.

use crate::common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::kube::{
    KubeEnv, condition, container_id, container_status, kube_env, kube_env_with, phase, restarts,
    running, waiting_message, waiting_reason,
};
use corral_cri_api::corral::{DeleteRequest, GetRequest};
use corral_tests::daemon::DaemonOptions;

const MINUTE: Duration = Duration::from_secs(60);

/// An HTTP server on 8080 serving /etc (so `/hostname` exists), as the nginx stand-in.
const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/etc"]
    ports:
    - containerPort: 8080
"#;

async fn http_get(url: &str) -> Result<(u16, String)> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()
        .await?;
    let code = r.status().as_u16();
    Ok((code, r.text().await?))
}

#[tokio::test]
async fn a_single_web_pod_runs_and_serves_on_its_ip() -> Result<()> {
    let mut k = kube_env().await?;
    let applied = k.apply(WEB).await?;
    assert_eq!(
        applied,
        vec![("pod/web".to_string(), "created".to_string())]
    );
    let p = k
        .wait_pod("web", MINUTE, "Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await?;
    assert_eq!(phase(&p), "Running");
    assert!(running(&p, "web"));
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    assert!(
        ip.starts_with(
            &k.pods
                .d
                .net()
                .subnet
                .rsplit_once('.')
                .map_or("", |x| x.0)
                .to_string()
        ),
        "pod IP {ip}"
    );
    let (code, body) = http_get(&format!("http://{ip}:8080/hostname")).await?;
    assert_eq!((code, body.trim()), (200, "web"));
    // Applying the same manifest again changes nothing.
    assert_eq!(k.apply(WEB).await?[0].1, "unchanged");
    let reasons: Vec<String> = k
        .events("web")
        .await?
        .into_iter()
        .map(|e| e.reason)
        .collect();
    for r in ["Pulled", "Created", "Started"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "no {r} event in {reasons:?}"
        );
    }
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn two_containers_reach_each_other_on_localhost() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
  - name: client
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do wget -q -O- http://127.0.0.1:8080/hostname && echo reached; sleep 1; done"]
"#,
    )
    .await?;
    k.wait_phase("pair", "Running", MINUTE).await?;
    let until = Instant::now() + MINUTE;
    loop {
        let log = k.log("pair", "client").await.unwrap_or_default();
        if log.contains("pair\nreached") {
            break;
        }
        assert!(
            Instant::now() < until,
            "client never reached the web container: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn an_init_container_fills_an_empty_dir_the_app_reads() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  restartPolicy: Never
  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: fill
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo filled-by-init > /work/msg"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["cat", "/work/msg"]
    volumeMounts: [{name: work, mountPath: /work}]
"#,
    )
    .await?;
    let p = k.wait_phase("init", "Succeeded", MINUTE).await?;
    let init = container_status(&p, "fill").expect("init status");
    let t = init
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(condition(&p, "Initialized").as_deref(), Some("True"));
    assert_eq!(k.log("init", "main").await?, "filled-by-init\n");
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn env_comes_from_values_config_maps_secrets_and_the_downward_api() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {color: blue, size: large}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: envs, labels: {tier: back}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["env"]
    resources:
      limits: {memory: 64Mi}
    envFrom:
    - configMapRef: {name: cfg}
      prefix: CFG_
    env:
    - {name: PLAIN, value: "hello $(CFG_color)"}
    - name: COLOR
      valueFrom: {configMapKeyRef: {name: cfg, key: color}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: TIER
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}
    - name: MEM_LIMIT
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
"#,
    )
    .await?;
    let p = k.wait_phase("envs", "Succeeded", MINUTE).await?;
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let log = k.log("envs", "main").await?;
    for line in [
        "CFG_color=blue".to_string(),
        "CFG_size=large".into(),
        "PLAIN=hello blue".into(),
        "COLOR=blue".into(),
        "PASSWORD=s3cret".into(),
        "POD_NAME=envs".into(),
        "POD_NAMESPACE=default".into(),
        format!("POD_IP={ip}"),
        "TIER=back".into(),
        "MEM_LIMIT=64".into(),
    ] {
        assert!(log.lines().any(|l| l == line), "no {line:?} in {log}");
    }
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_again_and_again() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "x=$(head -c 200m /dev/zero | tr '\\0' x); echo survived"]
    resources:
      limits: {memory: 32Mi}
"#,
    )
    .await?;
    let p = k
        .wait_pod("hog", Duration::from_secs(90), "restarted twice", |p| {
            restarts(p, "hog") >= 2
        })
        .await?;
    let last = container_status(&p, "hog")
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(last.exit_code, 137);
    let events = k.events("hog").await?;
    assert!(
        events.iter().any(|e| e.reason == "BackOff"),
        "no BackOff event: {events:?}"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
    livenessProbe:
      httpGet: {path: /missing, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
"#,
    )
    .await?;
    k.wait_pod("live", Duration::from_secs(90), "restarted twice", |p| {
        restarts(p, "web") >= 2
    })
    .await?;
    let events = k.events("live").await?;
    let unhealthy = events
        .iter()
        .find(|e| e.reason == "Unhealthy")
        .expect("an Unhealthy event");
    assert!(
        unhealthy
            .message
            .contains("Liveness probe failed: HTTP probe failed with statuscode: 404"),
        "{unhealthy:?}"
    );
    assert!(unhealthy.count >= 2, "{unhealthy:?}");
    assert!(
        events.iter().any(|e| e.reason == "Killing"
            && e.message
                .contains("failed liveness probe, will be restarted")),
        "{events:?}"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_readiness_exec_probe_flips_ready() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do sleep 1; done"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
"#,
    )
    .await?;
    let p = k.wait_phase("ready", "Running", MINUTE).await?;
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    let is = |want: &'static str| {
        move |p: &corral_kube::k8s_openapi::api::core::v1::Pod| {
            condition(p, "Ready").as_deref() == Some(want)
        }
    };
    k.exec("ready", "main", &["touch", "/tmp/ready"]).await?;
    let p = k.wait_pod("ready", MINUTE, "Ready", is("True")).await?;
    assert!(container_status(&p, "main").is_some_and(|c| c.ready));
    k.exec("ready", "main", &["rm", "/tmp/ready"]).await?;
    k.wait_pod("ready", MINUTE, "not Ready", is("False"))
        .await?;
    assert_eq!(restarts(&k.pod("ready").await?, "main"), 0);
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn on_failure_with_a_successful_command_ends_succeeded_without_restart() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: OnFailure
  containers:
  - name: echo
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["echo", "hello from once"]
"#,
    )
    .await?;
    let p = k.wait_phase("once", "Succeeded", MINUTE).await?;
    assert_eq!(restarts(&p, "echo"), 0);
    assert_eq!(k.log("once", "echo").await?, "hello from once\n");
    // The finished pod's sandbox is stopped (its IP released), its container kept for logs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sandboxes = k.sandboxes().await?;
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(
        sandboxes[0].state, 1,
        "sandbox still ready: {:?}",
        sandboxes[0]
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn delete_waits_for_the_grace_period_then_kills() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'echo got TERM' TERM; while true; do sleep 1; done"]
"#,
    )
    .await?;
    k.wait_phase("stubborn", "Running", MINUTE).await?;
    let begun = Instant::now();
    k.delete("stubborn", Some(3)).await?;
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "deleted after {took:?}, before the grace period"
    );
    assert!(took < Duration::from_secs(15), "deleting took {took:?}");
    let err = k.pod("stubborn").await.expect_err("pod still there");
    assert!(err.to_string().contains("not found"), "{err}");
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn bad_manifests_are_refused_before_anything_is_created() -> Result<()> {
    let mut k = kube_env().await?;
    let cases = [
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    imagee: IMAGE\n",
            "unknown field \"spec.containers[0].imagee\"",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n",
            "spec.containers[0].image: Required value",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n  - {name: a, image: IMAGE}\n",
            "metadata.name: Invalid value: \"Bad_Name\"",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - {name: a, image: IMAGE}\n  - {name: a, image: IMAGE}\n",
            "spec.containers[1].name: Duplicate value: \"a\"",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: IMAGE\n    volumeMounts: [{name: nope, mountPath: /x}]\n",
            "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: IMAGE\n    env:\n    - name: X\n      valueFrom: {configMapKeyRef: {name: cfg, key: missing}}\n",
            "missing",
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
    // Nothing was stored, not even the valid ConfigMap beside the bad pod.
    assert!(k.pods().await?.is_empty());
    let cms = k
        .kube
        .get(GetRequest {
            kind: "configmaps".into(),
            all_namespaces: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .objects;
    assert!(cms.is_empty(), "{} configmaps stored", cms.len());
    let sandboxes = k.sandboxes().await?;
    assert!(sandboxes.is_empty());
    // A pod in a namespace that does not exist.
    let err = k
        .apply("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: nowhere}\nspec:\n  containers:\n  - {name: a, image: IMAGE}\n")
        .await
        .expect_err("missing namespace");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("namespaces \"nowhere\" not found"),
        "{err:?}"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_node_selector_that_does_not_match_leaves_the_pod_pending() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disk: ssd}
  containers:
  - {name: main, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
"#,
    )
    .await?;
    let p = k
        .wait_pod("picky", MINUTE, "unschedulable", |p| {
            condition(p, "PodScheduled").as_deref() == Some("False")
        })
        .await?;
    assert_eq!(phase(&p), "Pending");
    let c = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned()
        .expect("PodScheduled");
    assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
    assert!(
        c.message
            .unwrap_or_default()
            .contains("didn't match Pod's node affinity/selector")
    );
    let sandboxes = k.sandboxes().await?;
    assert!(
        sandboxes.is_empty(),
        "a sandbox was made for an unschedulable pod"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_pods() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: dev}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
"#,
    )
    .await?;
    let until = Instant::now() + MINUTE;
    loop {
        let pods = k.pods().await?;
        if pods.iter().any(|p| phase(p) == "Running") {
            break;
        }
        assert!(Instant::now() < until, "pod in dev never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    k.kube
        .delete(DeleteRequest {
            kind: "namespace".into(),
            names: vec!["dev".into()],
            wait: true,
            ..Default::default()
        })
        .await?;
    assert!(k.pods().await?.is_empty());
    let ns = k
        .kube
        .get(GetRequest {
            kind: "ns".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .objects;
    let names: Vec<String> = ns
        .iter()
        .map(|o| {
            serde_json::from_slice::<serde_json::Value>(o).unwrap_or_default()["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(names, vec!["default".to_string()]);
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn pods_keep_running_across_a_daemon_restart() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(WEB).await?;
    k.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: done}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: IMAGE, imagePullPolicy: IfNotPresent, command: [echo, once]}\n",
    )
    .await?;
    let before = k.wait_phase("web", "Running", MINUTE).await?;
    let done = k.wait_phase("done", "Succeeded", MINUTE).await?;
    let id = container_id(&before, "web").expect("container id");
    k.pods.d.restart().await?;
    reconnect(&mut k).await?;
    // A finished pod stays finished: its container is not run again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let done_after = k.pod("done").await?;
    assert_eq!(phase(&done_after), "Succeeded");
    assert_eq!(container_id(&done_after, "c"), container_id(&done, "c"));
    assert_eq!(k.log("done", "c").await?, "once\n");
    // The same container is adopted, not restarted.
    let after = k.wait_phase("web", "Running", MINUTE).await?;
    if restarts(&after, "web") != 0 {
        eprintln!("DAEMON LOG:\n{}", k.pods.d.log());
    }
    assert_eq!(container_id(&after, "web"), Some(id));
    assert_eq!(restarts(&after, "web"), 0);
    k.delete_all_and_assert_clean().await
}

async fn reconnect(k: &mut KubeEnv) -> Result<()> {
    let ch = k.pods.d.channel().await?;
    k.kube = corral_cri_api::corral::kube_service_client::KubeServiceClient::new(ch);
    k.pods.rt = k.pods.d.runtime().await?;
    Ok(())
}

#[tokio::test]
async fn volumes_of_every_kind_and_host_aliases_reach_the_container() -> Result<()> {
    let mut k = kube_env().await?;
    let host = tempfile::Builder::new()
        .prefix("corral-hostpath-")
        .tempdir()?;
    std::fs::write(host.path().join("from-host"), "host file\n")?;
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: abc123}
---
apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {app: vols}}
spec:
  restartPolicy: Never
  hostAliases:
  - {ip: 10.1.2.3, hostnames: [db.local]}
  volumes:
  - name: cfg
    configMap:
      name: cfg
      items: [{key: greeting, path: msg/greeting.txt}]
  - {name: creds, secret: {secretName: creds}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - name: both
    projected:
      sources:
      - configMap: {name: cfg}
      - secret: {name: creds}
  - {name: host, hostPath: {path: HOSTDIR, type: Directory}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command:
    - sh
    - -c
    - |
      cat /cfg/msg/greeting.txt /creds/token /info/labels /both/greeting /both/token /host/from-host
      echo
      grep -E ' /(creds|mem) ' /proc/mounts | cut -d' ' -f2,3,4
      grep db.local /etc/hosts
      echo written > /host/from-pod
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: creds, mountPath: /creds}
    - {name: info, mountPath: /info}
    - {name: both, mountPath: /both}
    - {name: host, mountPath: /host}
    - {name: mem, mountPath: /mem}
"#
    .replace("HOSTDIR", &host.path().display().to_string());
    k.apply(&yaml).await?;
    k.wait_phase("vols", "Succeeded", MINUTE).await?;
    let log = k.log("vols", "main").await?;
    for want in [
        "hello",
        "abc123",
        "app=\"vols\"",
        "host file",
        "10.1.2.3\tdb.local",
    ] {
        assert!(log.contains(want), "no {want:?} in {log}");
    }
    let mounts: Vec<&str> = log.lines().filter(|l| l.starts_with('/')).collect();
    assert!(
        mounts.iter().any(|l| l.starts_with("/creds tmpfs")),
        "{log}"
    );
    assert!(
        mounts
            .iter()
            .any(|l| l.starts_with("/mem tmpfs") && l.contains("size=8192k")),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("from-pod"))?,
        "written\n"
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn post_start_and_pre_stop_hooks_run() -> Result<()> {
    let mut k = kube_env().await?;
    let host = tempfile::Builder::new().prefix("corral-hooks-").tempdir()?;
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: host, hostPath: {path: HOSTDIR}}
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do sleep 1; done"]
    volumeMounts: [{name: host, mountPath: /host}]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo post > /host/post"]}}
      preStop: {exec: {command: ["sh", "-c", "echo pre > /host/pre"]}}
"#
    .replace("HOSTDIR", &host.path().display().to_string());
    k.apply(&yaml).await?;
    k.wait_phase("hooks", "Running", MINUTE).await?;
    let until = Instant::now() + MINUTE;
    while !host.path().join("post").exists() {
        assert!(Instant::now() < until, "postStart never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!host.path().join("pre").exists());
    k.delete("hooks", None).await?;
    assert_eq!(std::fs::read_to_string(host.path().join("pre"))?, "pre\n");
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn pull_failures_config_errors_and_deadlines_show_in_the_status() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nopull}
spec:
  containers:
  - {name: main, image: "127.0.0.1:1/nothing/here:1", command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: soon-gone}
data: {k: v}
---
apiVersion: v1
kind: Pod
metadata: {name: config}
spec:
  restartPolicy: Never
  initContainers:
  - {name: wait, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3"]}
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: [env]
    env:
    - name: K
      valueFrom: {configMapKeyRef: {name: soon-gone, key: k}}
"#,
    )
    .await?;
    // The ConfigMap goes while the init container runs: the app container cannot be configured.
    k.kube
        .delete(DeleteRequest {
            kind: "configmap".into(),
            names: vec!["soon-gone".into()],
            ..Default::default()
        })
        .await?;
    let waiting = |name: &'static str, reason: &'static str| {
        move |p: &corral_kube::k8s_openapi::api::core::v1::Pod| {
            waiting_reason(p, name) == Some(reason)
        }
    };
    k.wait_pod(
        "nopull",
        MINUTE,
        "ErrImagePull",
        waiting("main", "ErrImagePull"),
    )
    .await?;
    k.wait_pod(
        "nopull",
        MINUTE,
        "ImagePullBackOff",
        waiting("main", "ImagePullBackOff"),
    )
    .await?;
    let events = k.events("nopull").await?;
    assert!(
        events.iter().any(|e| e.reason == "Failed"
            && e.message
                .starts_with("Failed to pull image \"127.0.0.1:1/nothing/here:1\"")),
        "{events:?}"
    );
    let p = k
        .wait_pod(
            "config",
            MINUTE,
            "CreateContainerConfigError",
            waiting("main", "CreateContainerConfigError"),
        )
        .await?;
    let msg = waiting_message(&p, "main");
    assert!(msg.contains("soon-gone"), "{msg}");
    let p = k.wait_phase("deadline", "Failed", MINUTE).await?;
    assert_eq!(
        p.status.as_ref().and_then(|s| s.reason.as_deref()),
        Some("DeadlineExceeded")
    );
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn a_new_image_restarts_the_container_and_other_changes_are_refused() -> Result<()> {
    let mut k = kube_env().await?;
    let pod = |image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: upd}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: \"{image}\", imagePullPolicy: IfNotPresent, command: [sleep, \"3600\"]}}\n"
        )
    };
    let image = k.image().to_string();
    k.apply(&pod(&image)).await?;
    let before = k.wait_phase("upd", "Running", MINUTE).await?;
    let by_digest = container_status(&before, "main")
        .map(|c| c.image_id.clone())
        .unwrap_or_default();
    assert!(by_digest.contains("@sha256:"), "{by_digest}");
    assert_eq!(k.apply(&pod(&by_digest)).await?[0].1, "configured");
    let after = k
        .wait_pod("upd", MINUTE, "restarted with the new image", |p| {
            restarts(p, "main") == 1 && running(p, "main")
        })
        .await?;
    assert_ne!(container_id(&after, "main"), container_id(&before, "main"));
    let events = k.events("upd").await?;
    assert!(
        events
            .iter()
            .any(|e| e.message == "Container main definition changed, will be restarted"),
        "{events:?}"
    );
    // Anything but images (and a few fields) cannot change.
    let changed = pod(&by_digest).replace("sleep, \"3600\"", "sleep, \"60\"");
    let err = k.apply(&changed).await.expect_err("command change");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("pod updates may not change fields"),
        "{err:?}"
    );
    // Sidecar init containers are refused with their field.
    let sidecar = manifest_sidecar(&image);
    let err = k.apply(&sidecar).await.expect_err("sidecar");
    assert!(
        err.message()
            .contains("spec.initContainers[0].restartPolicy"),
        "{err:?}"
    );
    k.delete_all_and_assert_clean().await
}

fn manifest_sidecar(image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: side}}\nspec:\n  initContainers:\n  - {{name: s, image: \"{image}\", restartPolicy: Always, command: [sleep, \"3600\"]}}\n  containers:\n  - {{name: main, image: \"{image}\", command: [sleep, \"3600\"]}}\n"
    )
}

#[tokio::test]
async fn run_as_non_root_refuses_a_root_image_user() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - {name: main, image: IMAGE, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
"#,
    )
    .await?;
    let p = k
        .wait_pod("nonroot", MINUTE, "CreateContainerConfigError", |p| {
            waiting_reason(p, "main") == Some("CreateContainerConfigError")
        })
        .await?;
    let msg = waiting_message(&p, "main");
    assert!(msg.contains("runAsNonRoot"), "{msg}");
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn image_pull_secrets_authenticate_pulls() -> Result<()> {
    use corral_tests::fixtures::ManifestFormat;
    use corral_tests::registry::{Registry, RegistryOptions};
    let reg = Registry::start_with(RegistryOptions::new().user("alice", "s3cret")).await?;
    let pushed = reg
        .client()
        .push_image(
            "private/app",
            "v1",
            &corral_tests::fixtures::busybox_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    let mut k = kube_env().await?;
    let config =
        serde_json::json!({"auths": {reg.addr(): {"username": "alice", "password": "s3cret"}}});
    let yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: regcred}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{config}'
---
apiVersion: v1
kind: Pod
metadata: {{name: private}}
spec:
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{{name: regcred}}]
  containers:
  - {{name: main, image: "{image}", imagePullPolicy: Always, command: [sleep, "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: nocreds}}
spec:
  containers:
  - {{name: main, image: "{image}", imagePullPolicy: Always, command: [sleep, "3600"]}}
"#,
        image = pushed.reference
    );
    k.apply(&yaml).await?;
    k.wait_phase("private", "Running", MINUTE).await?;
    let p = k
        .wait_pod("nocreds", MINUTE, "failing to pull", |p| {
            waiting_reason(p, "main")
                .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
        })
        .await?;
    assert!(!running(&p, "main"));
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn pod_settings_reach_the_containers() -> Result<()> {
    let mut k = kube_env().await?;
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: settings}
spec:
  terminationGracePeriodSeconds: 1
  hostname: box
  subdomain: sub
  shareProcessNamespace: true
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [example.test]
    options: [{name: ndots, value: "2"}]
  securityContext: {runAsUser: 1000, runAsGroup: 2000, supplementalGroups: [3000]}
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
    startupProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do sleep 1; done"]
    resources:
      limits: {cpu: 250m, memory: 64Mi}
"#,
    )
    .await?;
    let p = k
        .wait_pod("settings", MINUTE, "Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await?;
    assert!(container_status(&p, "web").is_some_and(|c| c.started == Some(true)));
    let (_, host) = k.exec("settings", "main", &["hostname"]).await?;
    assert_eq!(host.trim(), "box");
    let (_, resolv) = k
        .exec("settings", "main", &["cat", "/etc/resolv.conf"])
        .await?;
    for want in [
        "nameserver 192.0.2.53",
        "search example.test",
        "options ndots:2",
    ] {
        assert!(resolv.contains(want), "no {want:?} in {resolv}");
    }
    let (_, hosts) = k.exec("settings", "main", &["cat", "/etc/hosts"]).await?;
    let ip = p
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&format!("{ip}\t")) && l.contains("box")),
        "{hosts}"
    );
    let (_, id) = k.exec("settings", "main", &["id"]).await?;
    assert!(
        id.contains("uid=1000") && id.contains("gid=2000") && id.contains("3000"),
        "{id}"
    );
    // One PID namespace for the pod: main sees web's httpd.
    let (_, ps) = k.exec("settings", "main", &["ps", "-o", "args"]).await?;
    assert!(ps.contains("httpd -f -p 8080"), "{ps}");
    // The CPU limit as the kubelet converts it: 250m is 25000 of a 100000 period.
    let cid = container_id(&p, "main").expect("id");
    let status = k.pods.status(&cid).await?;
    let res = status.resources.and_then(|r| r.linux).expect("resources");
    assert_eq!((res.cpu_quota, res.cpu_period), (25_000, 100_000));
    assert_eq!(res.memory_limit_in_bytes, 64 << 20);
    k.delete_all_and_assert_clean().await
}

/// A host-network pod printing the addresses the downward API gives it.
const HOST_NET: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["env"]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: HOST_IP
      valueFrom: {fieldRef: {fieldPath: status.hostIP}}
"#;

/// Runs [`HOST_NET`] and returns (podIP, hostIP) from the status, checking the container saw
/// the same.
async fn host_network_addresses(k: &mut KubeEnv) -> Result<(String, String)> {
    k.apply(HOST_NET).await?;
    let p = k.wait_phase("hostnet", "Succeeded", MINUTE).await?;
    let st = p.status.unwrap_or_default();
    let (pod_ip, host_ip) = (
        st.pod_ip.unwrap_or_default(),
        st.host_ip.unwrap_or_default(),
    );
    let log = k.log("hostnet", "main").await?;
    for line in [format!("POD_IP={pod_ip}"), format!("HOST_IP={host_ip}")] {
        assert!(log.lines().any(|l| l == line), "no {line:?} in {log}");
    }
    k.delete_all_and_assert_clean().await?;
    Ok((pod_ip, host_ip))
}

/// The IPv4 address `ip` shows on the default route's interface (127.0.0.1 with no default
/// route), worked out apart from the daemon's own reading of /proc.
fn default_route_ipv4() -> Result<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "route", "show", "default"])
        .output()?;
    let routes = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(dev) = routes
        .lines()
        .find_map(|l| l.split_whitespace().skip_while(|w| *w != "dev").nth(1))
    else {
        return Ok("127.0.0.1".into());
    };
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", dev, "scope", "global"])
        .output()?;
    let addrs = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(addrs
        .lines()
        .find_map(|l| {
            let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            Some(cidr.split('/').next()?.to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".into()))
}

#[tokio::test]
async fn host_network_pods_report_the_default_route_address_as_the_kubelet_does() -> Result<()> {
    let expected = default_route_ipv4()?;
    let mut k = kube_env().await?;
    let (pod_ip, host_ip) = host_network_addresses(&mut k).await?;
    assert_eq!(host_ip, expected);
    assert_eq!(pod_ip, expected);
    Ok(())
}

#[tokio::test]
async fn configured_node_ips_are_the_host_and_host_network_pod_addresses() -> Result<()> {
    let mut k = kube_env_with(DaemonOptions {
        extra_config: "[kubelet]\nnode_ips = [\"198.51.100.77\", \"2001:db8::77\"]\n".into(),
        ..Default::default()
    })
    .await?;
    let (pod_ip, host_ip) = host_network_addresses(&mut k).await?;
    assert_eq!(
        (pod_ip.as_str(), host_ip.as_str()),
        ("198.51.100.77", "198.51.100.77")
    );
    Ok(())
}

/// The pod manager is a crate that speaks only CRI, so it drives any CRI runtime through its
/// socket (`Cri::remote`), as it would containerd: a second pod manager, in the test process
/// with its own store, runs a pod on the daemon over the socket and tears it down.
#[tokio::test]
async fn the_pod_manager_crate_drives_a_runtime_over_its_cri_socket() -> Result<()> {
    use corral_kube::Object;
    use corral_kube::store::Kind;
    use corral_kubelet::{Cri, Kubelet, KubeletConfig, logs::LogPolicy};

    let mut k = kube_env().await?;
    let dir = tempfile::tempdir()?;
    let kubelet = Kubelet::open(
        KubeletConfig {
            dir: dir.path().join("kubelet"),
            node_name: "remote".into(),
            node_labels: Default::default(),
            node_ips: vec!["127.0.0.1".into()],
            logs: LogPolicy::default(),
        },
        Cri::remote(k.pods.d.channel().await?),
    )?;
    kubelet.start();
    let yaml = common::kube::manifest(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: remote}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"#,
        k.image(),
    );
    kubelet.apply(&yaml, false, "")?;
    let phase_of = |kubelet: &Kubelet| -> Option<String> {
        match kubelet
            .get(Kind::Pod, Some("default"), "remote", None)
            .ok()?
            .pop()?
        {
            Object::Pod(p) => p.status.and_then(|s| s.phase),
            _ => None,
        }
    };
    let deadline = Instant::now() + MINUTE;
    while phase_of(&kubelet).as_deref() != Some("Running") {
        anyhow::ensure!(
            Instant::now() < deadline,
            "remote pod not Running: {:?}",
            phase_of(&kubelet)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The daemon's own pod manager knows nothing of it; the runtime runs it.
    assert!(k.pods().await?.is_empty());
    let sandboxes = k
        .pods
        .rt
        .list_pod_sandbox(corral_cri_api::v1::ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items;
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(
        sandboxes[0].metadata.as_ref().map(|m| m.name.as_str()),
        Some("remote")
    );
    kubelet.delete(Kind::Pod, "default", "remote", Some(0))?;
    let deadline = Instant::now() + MINUTE;
    while kubelet
        .get(Kind::Pod, Some("default"), "remote", None)
        .is_ok()
    {
        anyhow::ensure!(Instant::now() < deadline, "remote pod not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kubelet.shutdown();
    k.delete_all_and_assert_clean().await
}

/// `runtimeClassName` names the runtime handler the pod's sandbox runs on; an unknown one is an
/// event naming it, and the pod does not start.
#[tokio::test]
async fn runtime_class_name_picks_the_runtime_handler() -> Result<()> {
    let mut k = kube_env_with(DaemonOptions {
        runtime_config: "[runtime.handlers.runc]\npath = \"/usr/sbin/runc\"\n".into(),
        ..Default::default()
    })
    .await?;
    let pod = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  runtimeClassName: {class}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: IMAGE\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"
        )
    };
    k.apply(&pod("on-runc", "runc")).await?;
    // The pod manager, like the kubelet, limits every hugepage size (to 0 unless asked). runc
    // 1.1 cannot set a hugetlb limit where the controller is only on the v2 mount of a hybrid
    // host, as here: then the container fails in runc's words, which shows the pod is on
    // runc as well as running would.
    let p = k
        .wait_pod(
            "on-runc",
            MINUTE,
            "Running, or runc's hugetlb refusal",
            |p| {
                running(p, "main")
                    || (waiting_reason(p, "main") == Some("CreateContainerError")
                        && waiting_message(p, "main").contains("runc create failed"))
            },
        )
        .await?;
    if !running(&p, "main") {
        let why = waiting_message(&p, "main");
        assert!(why.contains("hugetlb"), "{why}");
    }
    let sandboxes = k.sandboxes().await?;
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(sandboxes[0].runtime_handler, "runc");

    k.apply(&pod("on-kata", "kata")).await?;
    let until = Instant::now() + MINUTE;
    loop {
        let events = k.events("on-kata").await?;
        if let Some(e) = events.iter().find(|e| e.reason == "FailedCreatePodSandBox") {
            assert!(e.message.contains("\"kata\""), "{e:?}");
            break;
        }
        assert!(
            Instant::now() < until,
            "no FailedCreatePodSandBox: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(k.sandboxes().await?.len(), 1, "no sandbox for on-kata");
    k.delete_all_and_assert_clean().await
}
