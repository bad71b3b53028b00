//! `delete pod NAME... | delete pods -l SEL | delete -f FILE | delete namespace NAME`:
//! KubeService.Delete, one line per object (`pod "web" deleted`, `force deleted` with a zero
//! grace period), with kubectl's grace-period rules (`--now` is 1s, `--grace-period=0` without
//! `--force` is 1s, `--force` alone is 0 and prints kubectl's warning).

use clap::Args;
use corral_cri_api::corral;

use super::kind::{Kind, singular_of};
use super::{KubeError, files};
use crate::client::{Cri, Deadline};

/// kubectl's warning for `--force` with a zero grace period.
pub const FORCE_WARNING: &str = "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.";

/// `delete`: delete pods, configmaps, secrets or namespaces of the pod manager.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// pods (pod, po), configmaps (cm), secrets, namespaces (ns); or TYPE/NAME.
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: Option<String>,
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Delete the objects named in a manifest (file, directory or -).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Seconds given to the pods to stop (negative: their own terminationGracePeriodSeconds).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Delete at once, without waiting for the pods to stop.
    #[arg(long)]
    pub force: bool,
    /// A grace period of 1 second.
    #[arg(long)]
    pub now: bool,
    /// Return only once the objects are gone.
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,
    /// A missing object is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// The grace period to send (`None`: the pods' own) and whether to print the force warning.
pub fn grace_period(args: &DeleteArgs) -> Result<(Option<i64>, bool), KubeError> {
    let mut grace = args.grace_period;
    if args.now {
        if grace >= 0 {
            return Err(KubeError::local(
                "--now and --grace-period cannot be specified together",
            ));
        }
        grace = 1;
    }
    if grace == 0 && !args.force {
        // kubectl: --grace-period=0 without --force means "as soon as possible", 1 second.
        grace = 1;
    }
    if args.force && grace < 0 {
        grace = 0;
    }
    let warn = args.force && grace == 0;
    Ok(((grace >= 0).then_some(grace), warn))
}

/// One request of a delete: the object it is about (for error messages) and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub target: Option<(Kind, String)>,
    pub request: corral::DeleteRequest,
}

/// The requests `delete` sends: one per name (so each missing one is reported on its own),
/// one for a selector, one per manifest; `manifests` are the `-f` inputs, already read.
pub fn plan(args: &DeleteArgs, manifests: &[String]) -> Result<Vec<Planned>, KubeError> {
    let (grace, _) = grace_period(args)?;
    let base = corral::DeleteRequest {
        grace_period_seconds: grace,
        force: args.force,
        wait: args.wait,
        ignore_not_found: args.ignore_not_found,
        ..Default::default()
    };
    let namespace = super::namespace_or_default(args.namespace.as_deref());
    if !args.files.is_empty() {
        if args.resource.is_some() {
            return Err(KubeError::local(
                "resources cannot be given both by argument and by filename",
            ));
        }
        return Ok(manifests
            .iter()
            .map(|m| Planned {
                target: None,
                request: corral::DeleteRequest {
                    namespace: args.namespace.clone().unwrap_or_default(),
                    manifest: m.clone(),
                    ..base.clone()
                },
            })
            .collect());
    }
    let Some(resource) = &args.resource else {
        return Err(KubeError::local(
            "You must provide one or more resources by argument or filename.",
        ));
    };
    let (kind, name) = Kind::parse_ref(resource)?;
    let mut names: Vec<String> = name.into_iter().collect();
    names.extend(args.names.iter().cloned());
    let namespace = if kind.namespaced() {
        namespace
    } else {
        String::new()
    };
    let base = corral::DeleteRequest {
        kind: kind.api_kind().into(),
        namespace,
        ..base
    };
    match (&args.selector, names.is_empty()) {
        (Some(sel), true) => {
            corral_kube::selector::Selector::parse(sel)
                .map_err(|e| KubeError::local(e.to_string()))?;
            Ok(vec![Planned {
                target: None,
                request: corral::DeleteRequest {
                    selector: sel.clone(),
                    ..base
                },
            }])
        }
        (Some(_), false) => Err(KubeError::local(
            "name cannot be provided when a selector is specified",
        )),
        (None, true) => Err(KubeError::local(
            "resource(s) were provided, but no name was specified",
        )),
        (None, false) => Ok(names
            .into_iter()
            .map(|n| Planned {
                target: Some((kind, n.clone())),
                request: corral::DeleteRequest {
                    names: vec![n],
                    ..base.clone()
                },
            })
            .collect()),
    }
}

/// `pod "web" deleted` (or `force deleted`).
pub fn deleted_line(object: &corral::ObjectRef, force: bool) -> String {
    let op = if force { "force deleted" } else { "deleted" };
    format!("{} \"{}\" {op}", singular_of(&object.kind), object.name)
}

pub async fn delete(cri: &Cri, args: DeleteArgs) -> anyhow::Result<()> {
    let mut manifests = Vec::new();
    if !args.files.is_empty() {
        for source in files::collect(&args.files)? {
            manifests.push(source.read()?);
        }
    }
    let planned = plan(&args, &manifests)?;
    let (grace, warn) = grace_period(&args)?;
    if warn {
        eprintln!("{FORCE_WARNING}");
    }
    let mut client = cri.kube().await?;
    // Waiting for pods to stop takes their grace period: only an explicit --timeout bounds it.
    let deadline = if args.wait {
        Deadline::Long
    } else {
        Deadline::Call
    };
    let mut failed = false;
    let mut any = false;
    for p in planned {
        match cri
            .call("Delete", deadline, p.request, |r| client.delete(r))
            .await
        {
            Ok(resp) => {
                for object in &resp.deleted {
                    any = true;
                    println!("{}", deleted_line(object, grace == Some(0)));
                }
            }
            Err(err) => {
                let target = p.target.as_ref().map(|(k, n)| (*k, n.as_str()));
                eprintln!("{}", KubeError::from_rpc(err, target));
                failed = true;
            }
        }
    }
    if !any && !failed && args.selector.is_some() {
        println!("No resources found");
    }
    if failed {
        return Err(super::errors::Reported.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Delete {
        #[command(flatten)]
        args: DeleteArgs,
    }

    fn parse(argv: &[&str]) -> DeleteArgs {
        Delete::try_parse_from(std::iter::once("delete").chain(argv.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn names_become_one_request_each() {
        let p = plan(&parse(&["pod", "web", "db", "-n", "dev"]), &[]).expect("plan");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].request.names, ["web"]);
        assert_eq!(p[1].request.names, ["db"]);
        assert_eq!(p[0].request.kind, "Pod");
        assert_eq!(p[0].request.namespace, "dev");
        assert!(p[0].request.wait);
        assert_eq!(p[0].request.grace_period_seconds, None);
        assert_eq!(p[1].target, Some((Kind::Pod, "db".to_string())));
        let p = plan(&parse(&["namespace", "dev", "-n", "x"]), &[]).expect("plan");
        assert_eq!(p[0].request.kind, "Namespace");
        assert_eq!(p[0].request.namespace, "");
        let p = plan(
            &parse(&["cm/cfg", "--wait=false", "--ignore-not-found"]),
            &[],
        )
        .expect("plan");
        assert_eq!(p[0].request.kind, "ConfigMap");
        assert_eq!(p[0].request.names, ["cfg"]);
        assert!(!p[0].request.wait);
        assert!(p[0].request.ignore_not_found);
    }

    #[test]
    fn selectors_and_manifests() {
        let p = plan(&parse(&["pods", "-l", "app=web"]), &[]).expect("plan");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].request.selector, "app=web");
        assert!(p[0].request.names.is_empty());
        assert!(plan(&parse(&["pods", "-l", "app in (x"]), &[]).is_err());
        assert!(plan(&parse(&["pods", "web", "-l", "a=b"]), &[]).is_err());
        assert_eq!(
            plan(&parse(&["pods"]), &[])
                .expect_err("no name")
                .to_string(),
            "error: resource(s) were provided, but no name was specified"
        );
        assert!(plan(&parse(&[]), &[]).is_err());
        let p = plan(&parse(&["-f", "x.yaml"]), &["kind: Pod".into()]).expect("plan");
        assert_eq!(p[0].request.manifest, "kind: Pod");
        assert_eq!(p[0].request.kind, "");
        assert_eq!(p[0].target, None);
    }

    #[test]
    fn grace_periods_follow_kubectl() {
        let g = |argv: &[&str]| grace_period(&parse(argv));
        assert_eq!(g(&["pod", "a"]), Ok((None, false)));
        assert_eq!(
            g(&["pod", "a", "--grace-period", "5"]),
            Ok((Some(5), false))
        );
        assert_eq!(g(&["pod", "a", "--grace-period=0"]), Ok((Some(1), false)));
        assert_eq!(g(&["pod", "a", "--now"]), Ok((Some(1), false)));
        assert_eq!(g(&["pod", "a", "--force"]), Ok((Some(0), true)));
        assert_eq!(
            g(&["pod", "a", "--force", "--grace-period=0"]),
            Ok((Some(0), true))
        );
        assert_eq!(
            g(&["pod", "a", "--force", "--grace-period=3"]),
            Ok((Some(3), false))
        );
        assert!(g(&["pod", "a", "--now", "--grace-period=3"]).is_err());
    }

    #[test]
    fn deleted_lines() {
        let o = corral::ObjectRef {
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "web".into(),
        };
        assert_eq!(deleted_line(&o, false), "pod \"web\" deleted");
        assert_eq!(deleted_line(&o, true), "pod \"web\" force deleted");
    }
}
