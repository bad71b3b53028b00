//! `apply -f`, `create -f`, `create namespace NAME` and `run NAME --image IMAGE`: manifests sent
//! to `KubeService.Apply`, one request per input (each all or nothing), one line per object:
//! `pod/web created`.

use clap::Args;
use corral_cri_api::corral;
use corral_kube::Object;
use corral_kube::k8s_openapi::api::core::v1::Namespace;
use corral_kube::run::RunOptions;

use super::KubeError;
use super::files;
use super::kind::{Kind, singular_of};
use crate::client::{Cri, Deadline};

/// `apply`: create or update objects from manifests.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest file, a directory of *.yaml, *.yml and *.json files, or - for stdin.
    #[arg(
        short = 'f',
        long = "filename",
        required = true,
        value_name = "FILE|DIR|-"
    )]
    pub files: Vec<String>,
    /// Namespace of objects that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// kubectl's `create`: objects from manifests (`-f`) or a namespace (`create namespace NAME`).
#[derive(Debug, Args)]
pub struct KubeCreateArgs {
    /// A manifest file, a directory of *.yaml, *.yml and *.json files, or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    /// Namespace of objects that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// `namespace NAME`.
    #[arg(value_name = "namespace NAME")]
    pub what: Vec<String>,
}

/// kubectl's `run NAME --image IMAGE`: create a pod with one container.
#[derive(Debug, Args)]
pub struct KubeRunArgs {
    /// The pod's (and its container's) name.
    pub name: String,
    /// The container image.
    #[arg(long, required = true)]
    pub image: String,
    /// Always, OnFailure or Never.
    #[arg(long)]
    pub restart: Option<String>,
    /// Environment variables, K=V (repeatable).
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// The port the container exposes.
    #[arg(long)]
    pub port: Option<i32>,
    /// Labels a=b,c=d (instead of run=NAME).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// The words after -- are the command, not the arguments.
    #[arg(long)]
    pub command: bool,
    /// Always, IfNotPresent or Never.
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// none, client or server: with client, only print the pod.
    #[arg(long, num_args = 0..=1, default_missing_value = "client", value_parser = ["none", "client", "server"])]
    pub dry_run: Option<String>,
    /// With --dry-run=client: yaml, json or name.
    #[arg(short, long, value_parser = ["yaml", "json", "name"])]
    pub output: Option<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The container's arguments (or command, with --command).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// The request for one manifest.
pub fn request(manifest: String, create: bool, namespace: Option<&str>) -> corral::ApplyRequest {
    corral::ApplyRequest {
        manifest,
        create,
        namespace: namespace.unwrap_or_default().to_string(),
    }
}

/// `pod/web created`.
pub fn result_line(result: &corral::ApplyResult) -> String {
    let (kind, name) = result
        .object
        .as_ref()
        .map(|o| (o.kind.as_str(), o.name.as_str()))
        .unwrap_or_default();
    format!("{}/{name} {}", singular_of(kind), result.action)
}

async fn send(
    cri: &Cri,
    request: corral::ApplyRequest,
    target: Option<(Kind, &str)>,
) -> Result<Vec<String>, KubeError> {
    let mut client = cri
        .kube()
        .await
        .map_err(|e| KubeError::local(format!("{e:#}")))?;
    let response = cri
        .call("Apply", Deadline::Call, request, |r| client.apply(r))
        .await
        .map_err(|e| KubeError::from_rpc(e, target))?;
    Ok(response.results.iter().map(result_line).collect())
}

async fn apply_files(
    cri: &Cri,
    file_args: &[String],
    namespace: Option<&str>,
    create: bool,
) -> anyhow::Result<()> {
    let sources = files::collect(file_args)?;
    let mut failed = None;
    for source in &sources {
        let manifest = source.read()?;
        match send(cri, request(manifest, create, namespace), None).await {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(err) => {
                eprintln!("{err}");
                failed = Some(err);
            }
        }
    }
    match failed {
        // Already printed; main prints nothing more for a bare exit.
        Some(_) => Err(super::errors::Reported.into()),
        None => Ok(()),
    }
}

pub async fn apply(cri: &Cri, args: ApplyArgs) -> anyhow::Result<()> {
    apply_files(cri, &args.files, args.namespace.as_deref(), false).await
}

/// The Namespace `create namespace NAME` sends.
pub fn namespace_manifest(name: &str) -> String {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    Object::Namespace(ns).to_value().to_string()
}

pub async fn create(cri: &Cri, args: KubeCreateArgs) -> anyhow::Result<()> {
    match (args.files.is_empty(), args.what.as_slice()) {
        (false, []) => apply_files(cri, &args.files, args.namespace.as_deref(), true).await,
        (true, [ns, name]) if ns == "namespace" || ns == "ns" => {
            let req = request(namespace_manifest(name), true, None);
            for line in send(cri, req, Some((Kind::Namespace, name))).await? {
                println!("{line}");
            }
            Ok(())
        }
        (true, [ns]) if ns == "namespace" || ns == "ns" => {
            Err(KubeError::local("exactly one NAME is required, got 0").into())
        }
        _ => Err(KubeError::local(
            "create takes -f FILE or namespace NAME (crictl form: create POD_ID CONTAINER_CONFIG POD_CONFIG)",
        )
        .into()),
    }
}

/// The `kubectl run` flags as corral-kube takes them.
pub fn run_options(args: &KubeRunArgs) -> RunOptions {
    RunOptions {
        name: args.name.clone(),
        image: args.image.clone(),
        restart: args.restart.clone(),
        env: args.env.clone(),
        port: args.port,
        labels: args.labels.clone(),
        command: args.command,
        args: args.args.clone(),
        image_pull_policy: args.image_pull_policy.clone(),
        namespace: args.namespace.clone(),
    }
}

/// What `run` prints for a client-side dry run.
pub fn dry_run_output(args: &KubeRunArgs) -> Result<String, KubeError> {
    let opts = run_options(args);
    let local = |e: corral_kube::run::RunError| KubeError::local(e.to_string());
    match args.output.as_deref() {
        Some("yaml") => corral_kube::run::dry_run_yaml(&opts).map_err(local),
        Some("json") => {
            let pod = corral_kube::run::pod(&opts).map_err(local)?;
            Ok(corral_kube::table::to_json(&[Object::Pod(Box::new(pod))]))
        }
        Some(_) => {
            corral_kube::run::pod(&opts).map_err(local)?;
            Ok(format!("pod/{}\n", args.name))
        }
        None => {
            corral_kube::run::pod(&opts).map_err(local)?;
            Ok(format!("pod/{} created (dry run)\n", args.name))
        }
    }
}

pub async fn run(cri: &Cri, args: KubeRunArgs) -> anyhow::Result<()> {
    match args.dry_run.as_deref() {
        Some("client") => {
            print!("{}", dry_run_output(&args)?);
            return Ok(());
        }
        Some("server") => {
            return Err(KubeError::local("--dry-run=server is not supported by corrald").into());
        }
        _ => {}
    }
    if args.output.is_some() {
        return Err(KubeError::local("--output needs --dry-run=client").into());
    }
    let pod =
        corral_kube::run::pod(&run_options(&args)).map_err(|e| KubeError::local(e.to_string()))?;
    let manifest = Object::Pod(Box::new(pod)).to_value().to_string();
    let req = request(manifest, true, args.namespace.as_deref());
    for line in send(cri, req, Some((Kind::Pod, &args.name))).await? {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        args: KubeRunArgs,
    }

    fn run_args(argv: &[&str]) -> KubeRunArgs {
        Run::try_parse_from(std::iter::once("run").chain(argv.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn requests_and_result_lines() {
        let r = request("kind: Pod".into(), true, Some("dev"));
        assert!(r.create);
        assert_eq!(r.namespace, "dev");
        assert_eq!(request(String::new(), false, None).namespace, "");
        let result = |kind: &str, name: &str, action: &str| corral::ApplyResult {
            object: Some(corral::ObjectRef {
                kind: kind.into(),
                namespace: "default".into(),
                name: name.into(),
            }),
            action: action.into(),
        };
        assert_eq!(
            result_line(&result("Pod", "web", "created")),
            "pod/web created"
        );
        assert_eq!(
            result_line(&result("ConfigMap", "cfg", "configured")),
            "configmap/cfg configured"
        );
        assert_eq!(
            result_line(&result("Namespace", "dev", "unchanged")),
            "namespace/dev unchanged"
        );
    }

    #[test]
    fn namespaces_are_built_as_objects() {
        let v: serde_json::Value = serde_json::from_str(&namespace_manifest("dev")).expect("json");
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["metadata"]["name"], "dev");
    }

    #[test]
    fn run_flags_map_to_the_pod() {
        let a = run_args(&[
            "web",
            "--image",
            "nginx",
            "--restart",
            "Never",
            "--env",
            "A=1",
            "--port",
            "80",
            "--labels",
            "app=web",
            "--command",
            "-n",
            "dev",
            "--",
            "sleep",
            "10",
        ]);
        let o = run_options(&a);
        assert_eq!(o.name, "web");
        assert_eq!(o.image, "nginx");
        assert_eq!(o.restart.as_deref(), Some("Never"));
        assert_eq!(o.env, ["A=1"]);
        assert_eq!(o.port, Some(80));
        assert_eq!(o.labels.as_deref(), Some("app=web"));
        assert!(o.command);
        assert_eq!(o.args, ["sleep", "10"]);
        assert_eq!(o.namespace.as_deref(), Some("dev"));
        let a = run_args(&["web", "--image=nginx", "--dry-run=client", "-o", "yaml"]);
        let yaml = dry_run_output(&a).expect("yaml");
        assert!(yaml.starts_with("apiVersion: v1\nkind: Pod\n"), "{yaml}");
        let a = run_args(&["web", "--image=nginx", "--dry-run"]);
        assert_eq!(a.dry_run.as_deref(), Some("client"));
        assert_eq!(
            dry_run_output(&a).expect("dry"),
            "pod/web created (dry run)\n"
        );
        let a = run_args(&[
            "web",
            "--image=nginx",
            "--restart=Sometimes",
            "--dry-run=client",
        ]);
        assert_eq!(
            dry_run_output(&a).expect_err("bad").to_string(),
            "error: invalid restart policy: Sometimes"
        );
    }
}
