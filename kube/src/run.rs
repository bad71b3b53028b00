//! The pod `kubectl run NAME --image IMG [--restart=...] [--env K=V] [--port N] [--labels ...]
//! [--command] [-- ARGS...] --dry-run=client -o yaml` prints: label `run: NAME` (unless
//! `--labels`), one container named NAME with `resources: {}`, `dnsPolicy: ClusterFirst`,
//! `restartPolicy: Always` (or the one given), `status: {}`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Pod, PodSpec, PodStatus, ResourceRequirements,
};

use crate::manifest::Object;

/// The flags of `kubectl run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The pod's (and container's) name.
    pub name: String,
    /// `--image`.
    pub image: String,
    /// `--restart`: `Always` (default), `OnFailure`, `Never`.
    pub restart: Option<String>,
    /// `--env K=V`, repeated.
    pub env: Vec<String>,
    /// `--port`.
    pub port: Option<i32>,
    /// `--labels a=b,c=d` (replaces `run: NAME`).
    pub labels: Option<String>,
    /// `--command`: the words after `--` are the command, not the args.
    pub command: bool,
    /// The words after `--`.
    pub args: Vec<String>,
    /// `--image-pull-policy`.
    pub image_pull_policy: Option<String>,
    /// `-n`.
    pub namespace: Option<String>,
}

/// Why the flags do not make a pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No `--image`.
    #[error("required flag(s) \"image\" not set")]
    NoImage,
    /// An unknown `--restart`.
    #[error("invalid restart policy: {0}")]
    Restart(String),
    /// `--env` without `=`.
    #[error("invalid env: {0}")]
    Env(String),
    /// A malformed `--labels`.
    #[error("invalid label spec: {0}")]
    Labels(String),
    /// A port out of range.
    #[error("invalid port: {0}")]
    Port(i32),
    /// The pod could not be printed.
    #[error("{0}")]
    Print(String),
}

/// Parses `a=b,c=d` as `--labels` does.
pub fn parse_labels(spec: &str) -> Result<BTreeMap<String, String>, RunError> {
    spec.split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => Ok((k.to_string(), v.to_string())),
            _ => Err(RunError::Labels(kv.to_string())),
        })
        .collect()
}

/// The pod `kubectl run` would create.
pub fn pod(opts: &RunOptions) -> Result<Pod, RunError> {
    if opts.image.is_empty() {
        return Err(RunError::NoImage);
    }
    let restart = opts.restart.clone().unwrap_or_else(|| "Always".into());
    if !["Always", "OnFailure", "Never"].contains(&restart.as_str()) {
        return Err(RunError::Restart(restart));
    }
    let labels = match &opts.labels {
        Some(l) => parse_labels(l)?,
        None => [("run".to_string(), opts.name.clone())].into(),
    };
    let env = opts
        .env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(EnvVar {
                name: k.into(),
                value: Some(v.into()),
                ..Default::default()
            }),
            _ => Err(RunError::Env(e.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ports = match opts.port {
        None => None,
        Some(p) if (1..=65535).contains(&p) => Some(vec![ContainerPort {
            container_port: p,
            ..Default::default()
        }]),
        Some(p) => return Err(RunError::Port(p)),
    };
    let words = (!opts.args.is_empty()).then(|| opts.args.clone());
    let (command, args) = if opts.command {
        (words, None)
    } else {
        (None, words)
    };
    let mut p = Pod::default();
    p.metadata.name = Some(opts.name.clone());
    p.metadata.namespace = opts.namespace.clone();
    p.metadata.labels = Some(labels);
    p.spec = Some(PodSpec {
        containers: vec![Container {
            name: opts.name.clone(),
            image: Some(opts.image.clone()),
            image_pull_policy: opts.image_pull_policy.clone(),
            command,
            args,
            env: (!env.is_empty()).then_some(env),
            ports,
            resources: Some(ResourceRequirements::default()),
            ..Default::default()
        }],
        dns_policy: Some("ClusterFirst".into()),
        restart_policy: Some(restart),
        ..Default::default()
    });
    p.status = Some(PodStatus::default());
    Ok(p)
}

/// `kubectl run ... --dry-run=client -o yaml`.
pub fn dry_run_yaml(opts: &RunOptions) -> Result<String, RunError> {
    let p = pod(opts)?;
    crate::table::to_yaml(&[Object::Pod(Box::new(p))]).map_err(|e| RunError::Print(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(name: &str, image: &str) -> RunOptions {
        RunOptions {
            name: name.into(),
            image: image.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_run_matches_kubectl() {
        assert_eq!(
            dry_run_yaml(&opts("nginx", "nginx")).unwrap(),
            "apiVersion: v1
kind: Pod
metadata:
  labels:
    run: nginx
  name: nginx
spec:
  containers:
  - image: nginx
    name: nginx
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Always
status: {}
"
        );
    }

    #[test]
    fn flags() {
        let o = RunOptions {
            restart: Some("Never".into()),
            env: vec!["A=1".into(), "B=x=y".into()],
            port: Some(8080),
            args: vec!["sleep".into(), "3600".into()],
            ..opts("box", "busybox")
        };
        assert_eq!(
            dry_run_yaml(&o).unwrap(),
            "apiVersion: v1
kind: Pod
metadata:
  labels:
    run: box
  name: box
spec:
  containers:
  - args:
    - sleep
    - \"3600\"
    env:
    - name: A
      value: \"1\"
    - name: B
      value: x=y
    image: busybox
    name: box
    ports:
    - containerPort: 8080
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Never
status: {}
"
        );
        let c = RunOptions {
            command: true,
            labels: Some("app=web,tier=fe".into()),
            ..o
        };
        let p = pod(&c).unwrap();
        let spec = p.spec.unwrap();
        assert_eq!(
            spec.containers[0].command.as_deref().unwrap(),
            ["sleep", "3600"]
        );
        assert!(spec.containers[0].args.is_none());
        assert_eq!(p.metadata.labels.unwrap().len(), 2);
    }

    #[test]
    fn output_parses_back_and_validates() {
        let y = dry_run_yaml(&RunOptions {
            port: Some(80),
            ..opts("web", "nginx")
        })
        .unwrap();
        let objs = crate::manifest::parse(&y).unwrap();
        assert!(crate::validate::object(&objs[0], &crate::objects::NoObjects).is_ok());
    }

    #[test]
    fn bad_flags() {
        assert_eq!(pod(&opts("a", "")), Err(RunError::NoImage));
        assert_eq!(
            pod(&RunOptions {
                restart: Some("Sometimes".into()),
                ..opts("a", "i")
            }),
            Err(RunError::Restart("Sometimes".into()))
        );
        assert_eq!(
            pod(&RunOptions {
                env: vec!["NOVALUE".into()],
                ..opts("a", "i")
            }),
            Err(RunError::Env("NOVALUE".into()))
        );
        assert_eq!(
            pod(&RunOptions {
                labels: Some("a".into()),
                ..opts("a", "i")
            }),
            Err(RunError::Labels("a".into()))
        );
        assert_eq!(
            pod(&RunOptions {
                port: Some(0),
                ..opts("a", "i")
            }),
            Err(RunError::Port(0))
        );
    }
}
