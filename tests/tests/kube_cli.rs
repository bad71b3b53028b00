//! corralctl's kubectl-style verbs against a real daemon: apply from a file and from stdin,
//! get (table, wide, name, json, labels, selectors), describe with events, logs and exec by pod
//! and container name, label, run --dry-run, create for an existing pod, delete.

use crate::common;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::kube::{KubeEnv, kube_env, manifest};

fn corralctl() -> std::path::PathBuf {
    corral_tests::daemon::corrald_bin().with_file_name("corralctl")
}

fn ctl(k: &KubeEnv, args: &[&str]) -> Result<Output> {
    ctl_stdin(k, args, None)
}

fn ctl_stdin(k: &KubeEnv, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let mut child = Command::new(corralctl())
        .arg("-r")
        .arg(format!("unix://{}", k.pods.d.socket().display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = child.stdin.take();
    if let (Some(text), Some(w)) = (stdin, input.as_mut()) {
        w.write_all(text.as_bytes())?;
    }
    drop(input);
    Ok(child.wait_with_output()?)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args` until its stdout contains `want`.
async fn until(k: &KubeEnv, args: &[&str], want: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = ctl(k, args)?;
        let text = out(&o);
        if text.contains(want) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{args:?} never printed {want:?}; last: {text}{}", err(&o));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const PAIR: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: pair
  labels: {app: pair, tier: front}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-a; while true; do sleep 1; done"]
  - name: b
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-b > /tmp/mark; echo from-b; sleep 0.1; echo b-err >&2; while true; do sleep 1; done"]
"#;

#[tokio::test]
async fn kubectl_style_verbs_on_a_two_container_pod() -> Result<()> {
    let mut k = kube_env().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("pair.yaml");
    std::fs::write(&file, manifest(PAIR, k.image()))?;
    let file = file.display().to_string();

    let o = ctl(&k, &["apply", "-f", &file])?;
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "pod/pair created\n");
    let o = ctl(&k, &["apply", "-f", &file])?;
    assert_eq!(out(&o), "pod/pair unchanged\n");

    // The table kubectl prints, once both containers run.
    let table = until(&k, &["get", "pods"], "2/2").await?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["pair", "2/2", "Running", "0"]);
    let wide = out(&ctl(&k, &["get", "pods", "-o", "wide"])?);
    let ip = k
        .pod("pair")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .unwrap_or_default();
    assert!(wide.contains(&ip) && wide.contains("NODE"), "{wide}");
    assert_eq!(out(&ctl(&k, &["get", "pods", "-o", "name"])?), "pod/pair\n");
    let json: serde_json::Value =
        serde_json::from_str(&out(&ctl(&k, &["get", "pod", "pair", "-o", "json"])?))?;
    assert_eq!(json["status"]["phase"], "Running");
    let o = ctl(&k, &["get", "pods", "-l", "tier notin (front)"])?;
    assert!(out(&o).is_empty(), "{}", out(&o));
    assert!(
        err(&o).contains("No resources found in default namespace."),
        "{}",
        err(&o)
    );
    let o = ctl(&k, &["get", "pods", "-l", "app=pair,tier", "--show-labels"])?;
    assert!(out(&o).contains("app=pair,tier=front"), "{}", out(&o));

    // logs and exec by container name. Like kubectl, a pod's logs are both streams on stdout,
    // in log order; a container id (crictl's form) keeps stderr on stderr.
    let both = until(&k, &["logs", "pair", "-c", "b"], "b-err").await?;
    assert_eq!(both, "from-b\nb-err\n");
    let b_id = k
        .pod("pair")
        .await?
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "b")
        .and_then(|c| c.container_id)
        .unwrap_or_default();
    let b_id = b_id.trim_start_matches("corral://");
    assert!(!b_id.is_empty(), "container b has an id");
    let o = ctl(&k, &["logs", b_id])?;
    assert_eq!(
        (out(&o).as_str(), err(&o).as_str()),
        ("from-b\n", "b-err\n")
    );
    let o = ctl(&k, &["logs", "pair"])?;
    assert_eq!(out(&o), "from-a\n");
    assert!(
        err(&o).contains("Defaulted container \"a\" out of: a, b"),
        "{}",
        err(&o)
    );
    let o = ctl(&k, &["exec", "pair", "-c", "b", "--", "cat", "/tmp/mark"])?;
    assert_eq!(out(&o), "from-b\n", "{}", err(&o));
    let o = ctl(&k, &["exec", "pair", "-c", "a", "--", "cat", "/tmp/mark"])?;
    assert_eq!(o.status.code(), Some(1), "the mark is only in b");
    assert!(
        err(&o).ends_with("command terminated with exit code 1\n"),
        "kubectl's last words: {}",
        err(&o)
    );
    let o = ctl(&k, &["exec", b_id, "--", "sh", "-c", "exit 3"])?;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        !err(&o).contains("command terminated"),
        "kubectl's words only for pods: {}",
        err(&o)
    );

    // describe shows the containers and the pod's events.
    let o = ctl(&k, &["describe", "pod", "pair"])?;
    let text = out(&o);
    for want in [
        "Name:",
        "pair",
        "Status:",
        "Running",
        "Containers:",
        "  a:",
        "  b:",
        "Events:",
        "Started",
    ] {
        assert!(
            text.contains(want),
            "describe lacks {want:?}:\n{text}{}",
            err(&o)
        );
    }

    // label, with and without --overwrite.
    let o = ctl(&k, &["label", "pods", "pair", "owner=me"])?;
    assert_eq!(out(&o), "pod/pair labeled\n", "{}", err(&o));
    let o = ctl(&k, &["label", "pods", "pair", "owner=you"])?;
    assert!(!o.status.success());
    assert!(
        err(&o).contains("'owner' already has a value (me), and --overwrite is false"),
        "{}",
        err(&o)
    );
    let o = ctl(
        &k,
        &["label", "pods", "pair", "owner=you", "--overwrite", "tier-"],
    )?;
    assert!(o.status.success(), "{}", err(&o));
    let labels = k.pod("pair").await?.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("owner").map(String::as_str), Some("you"));
    assert!(!labels.contains_key("tier"));

    // create of what exists is refused; a missing pod is NotFound.
    let o = ctl(&k, &["create", "-f", &file])?;
    assert!(!o.status.success());
    assert!(err(&o).contains("AlreadyExists"), "{}", err(&o));
    let o = ctl(&k, &["get", "pod", "nope"])?;
    assert!(
        err(&o).contains("Error from server (NotFound): pods \"nope\" not found"),
        "{}",
        err(&o)
    );

    let o = ctl(&k, &["delete", "pod", "pair", "--grace-period", "1"])?;
    assert_eq!(out(&o), "pod \"pair\" deleted\n", "{}", err(&o));
    k.delete_all_and_assert_clean().await
}

#[tokio::test]
async fn apply_from_stdin_run_and_bad_manifests() -> Result<()> {
    let mut k = kube_env().await?;
    let o = ctl(
        &k,
        &[
            "run",
            "solo",
            "--image",
            k.image(),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    )?;
    let yaml = out(&o);
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("name: solo"),
        "{yaml}{}",
        err(&o)
    );
    assert!(k.pods().await?.is_empty(), "a dry run created something");

    let once = manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: once}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: IMAGE, imagePullPolicy: IfNotPresent, command: [echo, hi]}\n",
        k.image(),
    );
    let o = ctl_stdin(&k, &["apply", "-f", "-"], Some(&once))?;
    assert_eq!(out(&o), "pod/once created\n", "{}", err(&o));
    until(&k, &["get", "pods"], "Completed").await?;

    let bad = manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - {name: c, image: IMAGE, imagePullPolicy: IfNotPresent, comand: [x]}\n",
        k.image(),
    );
    let o = ctl_stdin(&k, &["apply", "-f", "-"], Some(&bad))?;
    assert!(!o.status.success());
    assert!(
        err(&o).contains("unknown field \"spec.containers[0].comand\""),
        "{}",
        err(&o)
    );
    let names = out(&ctl(&k, &["get", "pods", "-o", "name"])?);
    assert_eq!(names, "pod/once\n");

    // Namespaces, ConfigMaps and Secrets; delete -f and -l.
    let o = ctl(&k, &["create", "namespace", "dev"])?;
    assert_eq!(out(&o), "namespace/dev created\n", "{}", err(&o));
    let ns = out(&ctl(&k, &["get", "ns"])?);
    assert!(
        ns.lines()
            .any(|l| l.starts_with("dev ") && l.contains("Active")),
        "{ns}"
    );
    let data = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: dev, labels: {team: red}}\ndata: {a: b, c: d}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: dev}\nstringData: {k: v}\n";
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("data.yaml");
    std::fs::write(&file, data)?;
    let file = file.display().to_string();
    let o = ctl(&k, &["apply", "-f", &file])?;
    assert_eq!(
        out(&o),
        "configmap/cfg created\nsecret/s created\n",
        "{}",
        err(&o)
    );
    let cm = out(&ctl(&k, &["get", "configmaps", "-n", "dev"])?);
    let row: Vec<&str> = cm
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..2], ["cfg", "2"], "{cm}");
    let secrets = out(&ctl(&k, &["get", "secrets", "-A"])?);
    assert!(secrets.contains("Opaque"), "{secrets}");
    let o = ctl(&k, &["delete", "-f", &file])?;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&ctl(&k, &["get", "cm", "-n", "dev", "-o", "name"])?).is_empty());
    let o = ctl(&k, &["delete", "namespace", "dev"])?;
    assert!(o.status.success(), "{}", err(&o));
    let o = ctl(&k, &["delete", "pods", "-l", "!nothing"])?;
    assert_eq!(out(&o), "pod \"once\" deleted\n", "{}", err(&o));
    k.delete_all_and_assert_clean().await
}

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(k: &KubeEnv, args: &[&str]) -> Result<Child> {
    Ok(Child(
        Command::new(corralctl())
            .arg("-r")
            .arg(format!("unix://{}", k.pods.d.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    ))
}

#[tokio::test]
async fn port_forward_by_pod_name_and_get_watch() -> Result<()> {
    let mut k = kube_env().await?;
    // The watch prints the header, then a row per change: Pending, then Running.
    let mut watch = spawn(&k, &["get", "pods", "-w"])?;
    let stdout = watch.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: IMAGE
    imagePullPolicy: IfNotPresent
    command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
"#,
    )
    .await?;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("web") && l.contains("Running"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => bail!("get -w never showed web Running: {seen:?}"),
        }
    }
    assert!(seen[0].starts_with("NAME"), "{seen:?}");
    drop(watch);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _fwd = spawn(&k, &["port-forward", "web", &format!("{port}:8080")])?;
    let url = format!("http://127.0.0.1:{port}/hostname");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let r = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = r {
            break r.text().await?;
        }
        if Instant::now() > deadline {
            bail!("port-forward to pod web never answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body.trim(), "web");
    drop(_fwd);
    k.delete_all_and_assert_clean().await
}
