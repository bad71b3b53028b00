//! `get pods|configmaps|secrets|namespaces [NAME...]`: tables, `-o wide|yaml|json|name`,
//! `--show-labels`, `-w` (KubeService.Watch: the header once, then a row per change).

use clap::Args;
use corral_cri_api::corral;
use corral_kube::Object;
use corral_kube::k8s_openapi::jiff::Timestamp;
use corral_kube::table::{self, PodOptions, Table};

use super::kind::Kind;
use super::{KubeError, decode};
use crate::client::{Cri, Deadline};

/// `get`: display pods, configmaps, secrets or namespaces of the pod manager.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// pods (pod, po), configmaps (cm), secrets, namespaces (ns); or TYPE/NAME.
    #[arg(value_name = "TYPE[/NAME]")]
    pub resource: String,
    /// Objects by name.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (k=v, k!=v, k in (a,b), k, !k).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// wide, yaml, json or name.
    #[arg(short, long, value_parser = ["wide", "yaml", "json", "name"])]
    pub output: Option<String>,
    /// After listing, watch for changes.
    #[arg(short, long)]
    pub watch: bool,
    /// A LABELS column last.
    #[arg(long)]
    pub show_labels: bool,
}

/// What `get` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub kind: Kind,
    pub names: Vec<String>,
    pub namespace: String,
    pub all_namespaces: bool,
    pub selector: String,
}

/// The arguments as a query; `-l` is checked here, as kubectl checks it before any request.
pub fn query(args: &GetArgs) -> Result<Query, KubeError> {
    let (kind, name) = Kind::parse_ref(&args.resource)?;
    let mut names: Vec<String> = name.into_iter().collect();
    names.extend(args.names.iter().cloned());
    let selector = args.selector.clone().unwrap_or_default();
    corral_kube::selector::Selector::parse(&selector)
        .map_err(|e| KubeError::local(e.to_string()))?;
    if !names.is_empty() && !selector.is_empty() {
        return Err(KubeError::local(
            "name cannot be provided when a selector is specified",
        ));
    }
    let all_namespaces = args.all_namespaces && kind.namespaced() && names.is_empty();
    Ok(Query {
        kind,
        names,
        namespace: if kind.namespaced() {
            super::namespace_or_default(args.namespace.as_deref())
        } else {
            String::new()
        },
        all_namespaces,
        selector,
    })
}

impl Query {
    /// One GetRequest per name, or one listing.
    pub fn requests(&self) -> Vec<corral::GetRequest> {
        let base = corral::GetRequest {
            kind: self.kind.api_kind().into(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
            name: String::new(),
            selector: self.selector.clone(),
        };
        if self.names.is_empty() {
            return vec![base];
        }
        self.names
            .iter()
            .map(|n| corral::GetRequest {
                name: n.clone(),
                ..base.clone()
            })
            .collect()
    }

    pub fn watch_request(&self) -> corral::WatchRequest {
        corral::WatchRequest {
            kind: self.kind.api_kind().into(),
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
            name: self.names.first().cloned().unwrap_or_default(),
            selector: self.selector.clone(),
        }
    }
}

/// How objects are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format<'a> {
    pub output: Option<&'a str>,
    pub all_namespaces: bool,
    pub show_labels: bool,
}

/// The table of objects of one kind.
pub fn table(kind: Kind, objects: &[Object], f: Format<'_>, now: Timestamp) -> Table {
    let wide = f.output == Some("wide");
    match kind {
        Kind::Pod => {
            let pods: Vec<_> = objects
                .iter()
                .filter_map(|o| match o {
                    Object::Pod(p) => Some((**p).clone()),
                    _ => None,
                })
                .collect();
            let opts = PodOptions {
                wide,
                all_namespaces: f.all_namespaces,
                show_labels: f.show_labels,
            };
            return table::pods(&pods, opts, now);
        }
        Kind::ConfigMap | Kind::Secret | Kind::Namespace => {}
    }
    let mut t = match kind {
        Kind::ConfigMap => table::config_maps(
            &objects
                .iter()
                .filter_map(|o| match o {
                    Object::ConfigMap(c) => Some(c.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            f.all_namespaces,
            now,
        ),
        Kind::Secret => table::secrets(
            &objects
                .iter()
                .filter_map(|o| match o {
                    Object::Secret(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            f.all_namespaces,
            now,
        ),
        _ => table::namespaces(
            &objects
                .iter()
                .filter_map(|o| match o {
                    Object::Namespace(n) => Some(n.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            now,
        ),
    };
    if f.show_labels {
        t.headers.push("LABELS".into());
        for (row, o) in t.rows.iter_mut().zip(objects) {
            row.push(table::labels(o.metadata().labels.as_ref()));
        }
    }
    t
}

/// The text `get` prints on stdout for objects of one kind.
pub fn render(
    kind: Kind,
    objects: &[Object],
    f: Format<'_>,
    now: Timestamp,
) -> Result<String, KubeError> {
    Ok(match f.output {
        Some("yaml") => table::to_yaml(objects).map_err(|e| KubeError::local(e.to_string()))?,
        Some("json") => table::to_json(objects),
        Some("name") => table::names(objects),
        _ => table(kind, objects, f, now).render(),
    })
}

/// What kubectl says on stderr for an empty list.
pub fn empty_message(q: &Query) -> String {
    if q.all_namespaces || !q.kind.namespaced() {
        table::no_resources(None)
    } else {
        table::no_resources(Some(&q.namespace))
    }
}

pub async fn get(cri: &Cri, args: GetArgs) -> anyhow::Result<()> {
    let q = query(&args)?;
    let f = Format {
        output: args.output.as_deref(),
        all_namespaces: q.all_namespaces,
        show_labels: args.show_labels,
    };
    let mut client = cri.kube().await?;
    if args.watch {
        return watch(cri, &q, f).await;
    }
    let mut objects = Vec::new();
    let mut failed = false;
    for req in q.requests() {
        let name = req.name.clone();
        match cri
            .call("Get", Deadline::Call, req, |r| client.get(r))
            .await
        {
            Ok(resp) => {
                for bytes in &resp.objects {
                    objects.push(decode(bytes)?);
                }
            }
            Err(err) => {
                let target = (!name.is_empty()).then_some((q.kind, name.as_str()));
                eprintln!("{}", KubeError::from_rpc(err, target));
                failed = true;
            }
        }
    }
    if objects.is_empty() && q.names.is_empty() {
        eprintln!("{}", empty_message(&q));
    } else if !objects.is_empty() {
        print!("{}", render(q.kind, &objects, f, super::now())?);
    }
    if failed {
        return Err(super::errors::Reported.into());
    }
    Ok(())
}

/// One watch event as printed: a table row (the header only before the first), or the object.
pub fn watch_output(
    kind: Kind,
    object: &Object,
    f: Format<'_>,
    first: bool,
    now: Timestamp,
) -> Result<String, KubeError> {
    match f.output {
        Some("yaml") => {
            let y = table::to_yaml(std::slice::from_ref(object))
                .map_err(|e| KubeError::local(e.to_string()))?;
            Ok(if first { y } else { format!("---\n{y}") })
        }
        Some("json") | Some("name") => render(kind, std::slice::from_ref(object), f, now),
        _ => {
            let text = table(kind, std::slice::from_ref(object), f, now).render();
            Ok(if first {
                text
            } else {
                text.lines().skip(1).map(|l| format!("{l}\n")).collect()
            })
        }
    }
}

async fn watch(cri: &Cri, q: &Query, f: Format<'_>) -> anyhow::Result<()> {
    let mut client = cri.kube().await?;
    let req = q.watch_request();
    cri.debug(|| format!("WatchRequest: {req:?}"));
    let mut stream = client
        .watch(req)
        .await
        .map_err(|s| KubeError::from_rpc(crate::client::RpcError::Status(s), None))?
        .into_inner();
    let mut first = true;
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = stream.message() => next,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(s) => {
                return Err(KubeError::from_rpc(crate::client::RpcError::Status(s), None).into());
            }
        };
        let object = decode(&event.object)?;
        print!("{}", watch_output(q.kind, &object, f, first, super::now())?);
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Get {
        #[command(flatten)]
        args: GetArgs,
    }

    fn parse(argv: &[&str]) -> GetArgs {
        Get::try_parse_from(std::iter::once("get").chain(argv.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn arguments_map_to_requests() {
        let q = query(&parse(&["po", "-n", "dev", "-l", "app=web"])).expect("query");
        let reqs = q.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].kind, "Pod");
        assert_eq!(reqs[0].namespace, "dev");
        assert_eq!(reqs[0].selector, "app=web");
        assert_eq!(reqs[0].name, "");
        let q = query(&parse(&["pod/web", "db"])).expect("query");
        let names: Vec<_> = q.requests().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["web", "db"]);
        assert_eq!(q.namespace, "default");
        let q = query(&parse(&["cm", "-A"])).expect("query");
        assert!(q.requests()[0].all_namespaces);
        assert_eq!(q.requests()[0].kind, "ConfigMap");
        let q = query(&parse(&["ns", "-n", "dev"])).expect("query");
        assert_eq!(q.requests()[0].namespace, "");
        assert_eq!(empty_message(&q), "No resources found");
        let q = query(&parse(&["pods"])).expect("query");
        assert_eq!(
            empty_message(&q),
            "No resources found in default namespace."
        );
        assert!(query(&parse(&["pods", "-l", "a in (b"])).is_err());
        assert!(query(&parse(&["deployments"])).is_err());
        assert!(query(&parse(&["pods", "web", "-l", "a=b"])).is_err());
        assert!(Get::try_parse_from(["get", "pods", "-o", "table"]).is_err());
    }

    fn pod(name: &str) -> Object {
        decode(
            format!(
                r#"{{"kind":"Pod","metadata":{{"name":"{name}","namespace":"default","labels":{{"app":"web"}},
                "creationTimestamp":"2025-01-01T00:00:00Z"}},"spec":{{"containers":[{{"name":"c"}}]}},
                "status":{{"phase":"Running","containerStatuses":[{{"name":"c","ready":true,"restartCount":0,"image":"i","imageID":"",
                "state":{{"running":{{}}}}}}]}}}}"#
            )
            .as_bytes(),
        )
        .expect("pod")
    }

    #[test]
    fn tables_names_and_watch_rows() {
        let now: Timestamp = "2025-01-01T00:05:00Z".parse().expect("time");
        let objs = [pod("web"), pod("database")];
        let f = Format {
            output: None,
            all_namespaces: false,
            show_labels: true,
        };
        assert_eq!(
            render(Kind::Pod, &objs, f, now).expect("table"),
            "NAME       READY   STATUS    RESTARTS   AGE   LABELS\n\
             web        1/1     Running   0          5m    app=web\n\
             database   1/1     Running   0          5m    app=web\n"
        );
        let name = Format {
            output: Some("name"),
            ..f
        };
        assert_eq!(
            render(Kind::Pod, &objs, name, now).expect("name"),
            "pod/web\npod/database\n"
        );
        let plain = Format {
            show_labels: false,
            ..f
        };
        let first = watch_output(Kind::Pod, &objs[0], plain, true, now).expect("row");
        assert_eq!(first.lines().count(), 2);
        let next = watch_output(Kind::Pod, &objs[1], plain, false, now).expect("row");
        assert_eq!(next, "database   1/1     Running   0          5m\n");
    }
}
