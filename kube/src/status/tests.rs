use super::*;
use crate::manifest::{Object, parse};
use k8s_openapi::jiff::SignedDuration;

fn pod(yaml_spec: &str) -> Pod {
    let y = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{yaml_spec}");
    match parse(&y).unwrap().remove(0) {
        Object::Pod(p) => *p,
        _ => panic!(),
    }
}

const TWO: &str = "  containers:\n  - {name: a, image: i}\n  - {name: b, image: i}\n";
const INITS: &str = "  initContainers:\n  - {name: i1, image: i}\n  - {name: i2, image: i}\n  containers:\n  - {name: a, image: i}\n";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn now() -> Timestamp {
    t(3600)
}

fn running(ready: bool) -> ContainerObserved {
    ContainerObserved {
        state: State::Running { started_at: t(0) },
        last_terminated: None,
        restart_count: 0,
        ready,
        started: Some(true),
        image: None,
        image_id: None,
        container_id: None,
    }
}

fn exited(code: i32, reason: Option<&str>) -> ContainerObserved {
    ContainerObserved {
        state: State::Terminated(Terminated {
            exit_code: code,
            reason: reason.map(Into::into),
            started_at: Some(t(0)),
            finished_at: Some(t(10)),
            ..Default::default()
        }),
        ready: false,
        started: Some(false),
        ..running(false)
    }
}

fn waiting(reason: &str, restarts: i32, last_code: i32) -> ContainerObserved {
    ContainerObserved {
        state: State::Waiting {
            reason: reason.into(),
            message: None,
        },
        last_terminated: (restarts > 0).then(|| Terminated {
            exit_code: last_code,
            finished_at: Some(now().checked_sub(SignedDuration::from_secs(300)).unwrap()),
            ..Default::default()
        }),
        restart_count: restarts,
        ..running(false)
    }
}

fn observe(p: &Pod, init: &[(&str, ContainerObserved)], app: &[(&str, ContainerObserved)]) -> Pod {
    let o = Observed {
        init_containers: init
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect(),
        containers: app
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect(),
        pod_ips: vec!["10.88.0.2".into()],
        sandbox_ready: true,
        ..Default::default()
    };
    let mut p = p.clone();
    p.status = Some(pod_status(&p, &o, now()));
    p
}

fn cols(p: &Pod) -> (String, String, String) {
    let c = columns(p, now());
    (c.ready, c.status, c.restarts)
}

fn cond(p: &Pod, kind: &str) -> (String, Option<String>, Option<String>) {
    let c = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap()
        .clone();
    (c.status, c.reason, c.message)
}

fn phase_of(p: &Pod) -> String {
    p.status.as_ref().unwrap().phase.clone().unwrap()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn nothing_created_yet() {
    let p = observe(&pod(TWO), &[], &[]);
    assert_eq!(phase_of(&p), "Pending");
    assert_eq!(cols(&p), (s("0/2"), s("ContainerCreating"), s("0")));
    assert_eq!(
        cond(&p, "ContainersReady"),
        (
            s("False"),
            Some(s("ContainersNotReady")),
            Some(s("containers with unknown status: [a b]"))
        )
    );
}

#[test]
fn running_and_ready() {
    let p = observe(
        &pod(TWO),
        &[],
        &[("a", running(true)), ("b", running(false))],
    );
    assert_eq!(phase_of(&p), "Running");
    assert_eq!(cols(&p), (s("1/2"), s("Running"), s("0")));
    assert_eq!(
        cond(&p, "Ready"),
        (
            s("False"),
            Some(s("ContainersNotReady")),
            Some(s("containers with unready status: [b]"))
        )
    );
    let p = observe(
        &pod(TWO),
        &[],
        &[("a", running(true)), ("b", running(true))],
    );
    assert_eq!(cond(&p, "Ready"), (s("True"), None, None));
    assert_eq!(cond(&p, "Initialized").0, "True");
    assert_eq!(cond(&p, "PodScheduled").0, "True");
    let names: Vec<_> = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.clone())
        .collect();
    assert_eq!(
        names,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    assert_eq!(
        p.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.88.0.2")
    );
}

#[test]
fn init_progress_and_failures() {
    let p = observe(&pod(INITS), &[], &[]);
    assert_eq!(cols(&p).1, "Init:0/2");
    assert_eq!(phase_of(&p), "Pending");
    assert_eq!(
        cond(&p, "Initialized"),
        (
            s("False"),
            Some(s("ContainersNotInitialized")),
            Some(s("containers with unknown status: [i1 i2]"))
        )
    );
    let p = observe(
        &pod(INITS),
        &[("i1", exited(0, None)), ("i2", running(false))],
        &[],
    );
    assert_eq!(cols(&p).1, "Init:1/2");
    let p = observe(&pod(INITS), &[("i1", exited(1, None))], &[]);
    assert_eq!(cols(&p).1, "Init:Error");
    assert_eq!(
        phase_of(&p),
        "Pending",
        "Always restarts the init container"
    );
    let never = pod(&format!("{INITS}  restartPolicy: Never\n"));
    let p = observe(&never, &[("i1", exited(1, None))], &[]);
    assert_eq!(phase_of(&p), "Failed");
    let p = observe(
        &pod(INITS),
        &[("i1", waiting("CrashLoopBackOff", 3, 1))],
        &[],
    );
    assert_eq!(
        cols(&p),
        (s("0/1"), s("Init:CrashLoopBackOff"), s("3 (5m ago)"))
    );
    let p = observe(
        &pod(INITS),
        &[("i1", exited(0, None)), ("i2", exited(0, None))],
        &[],
    );
    assert_eq!(cols(&p).1, "PodInitializing");
    assert_eq!(cond(&p, "Initialized").0, "True");
    let p = observe(&pod(INITS), &[("i1", exited(3, Some("")))], &[]);
    assert_eq!(
        cols(&p).1,
        "Init:ExitCode:3",
        "printPod's wording for an empty reason"
    );
}

#[test]
fn crash_loops_errors_and_completion() {
    let p = observe(
        &pod(TWO),
        &[],
        &[
            ("a", running(true)),
            ("b", waiting("CrashLoopBackOff", 4, 137)),
        ],
    );
    assert_eq!(cols(&p), (s("1/2"), s("CrashLoopBackOff"), s("4 (5m ago)")));
    assert_eq!(phase_of(&p), "Running");
    let one = pod("  containers:\n  - {name: a, image: i}\n");
    for reason in [
        "ErrImagePull",
        "ImagePullBackOff",
        "CreateContainerConfigError",
    ] {
        let p = observe(&one, &[], &[("a", waiting(reason, 0, 0))]);
        assert_eq!(cols(&p).1, reason);
        assert_eq!(phase_of(&p), "Pending");
    }
    let p = observe(&one, &[], &[("a", exited(137, Some("OOMKilled")))]);
    assert_eq!(cols(&p).1, "OOMKilled");
    assert_eq!(
        phase_of(&p),
        "Running",
        "restartPolicy Always: about to restart"
    );
    let never = pod("  restartPolicy: Never\n  containers:\n  - {name: a, image: i}\n");
    let p = observe(&never, &[], &[("a", exited(2, None))]);
    assert_eq!((phase_of(&p), cols(&p).1), (s("Failed"), s("Error")));
    let on_failure = pod("  restartPolicy: OnFailure\n  containers:\n  - {name: a, image: i}\n");
    let p = observe(&on_failure, &[], &[("a", exited(0, None))]);
    assert_eq!((phase_of(&p), cols(&p).1), (s("Succeeded"), s("Completed")));
    assert_eq!(
        cond(&p, "Ready"),
        (s("False"), Some(s("PodCompleted")), None)
    );
    assert_eq!(
        cond(&p, "Initialized"),
        (s("True"), Some(s("PodCompleted")), None)
    );
    let p = observe(&on_failure, &[], &[("a", exited(1, None))]);
    assert_eq!(
        phase_of(&p),
        "Running",
        "OnFailure restarts a failed container"
    );
}

#[test]
fn completed_with_a_running_sibling_and_terminating() {
    let p = observe(
        &pod(TWO),
        &[],
        &[("a", exited(0, None)), ("b", running(true))],
    );
    assert_eq!(cols(&p).1, "NotReady");
    let mut p = observe(
        &pod(TWO),
        &[],
        &[("a", running(true)), ("b", running(true))],
    );
    p.metadata.deletion_timestamp = Some(Time(now()));
    assert_eq!(cols(&p).1, "Terminating");
}

#[test]
fn unschedulable_and_deadline() {
    let one = pod("  nodeSelector: {disk: ssd}\n  containers:\n  - {name: a, image: i}\n");
    let o = Observed {
        unschedulable: Some(UNSCHEDULABLE_NODE_SELECTOR.into()),
        ..Default::default()
    };
    let mut p = one.clone();
    p.status = Some(pod_status(&p, &o, now()));
    assert_eq!(phase_of(&p), "Pending");
    assert_eq!(cols(&p), (s("0/1"), s("Pending"), s("0")));
    assert_eq!(
        cond(&p, "PodScheduled"),
        (
            s("False"),
            Some(s("Unschedulable")),
            Some(s(UNSCHEDULABLE_NODE_SELECTOR))
        )
    );
    let o = Observed {
        deadline_exceeded: true,
        terminal: true,
        containers: [("a".to_string(), exited(143, None))].into(),
        ..Default::default()
    };
    let mut p = one;
    p.status = Some(pod_status(&p, &o, now()));
    assert_eq!(phase_of(&p), "Failed");
    assert_eq!(
        p.status.as_ref().unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
    // printPod lets a container's terminated reason override the pod's reason.
    assert_eq!(cols(&p).1, "Error");
}

#[test]
fn transition_times_are_kept() {
    let p = observe(
        &pod(TWO),
        &[],
        &[("a", running(true)), ("b", running(true))],
    );
    let o = Observed {
        containers: [
            ("a".to_string(), running(true)),
            ("b".to_string(), running(false)),
        ]
        .into(),
        ..Default::default()
    };
    let later = now().checked_add(SignedDuration::from_secs(60)).unwrap();
    let st = pod_status(&p, &o, later);
    let get = |k: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == k)
            .unwrap()
            .last_transition_time
            .clone()
            .unwrap()
            .0
    };
    assert_eq!(get("PodScheduled"), now());
    assert_eq!(get("Ready"), later);
}

#[test]
fn sidecars_count_in_ready() {
    let p = pod(
        "  initContainers:\n  - {name: side, image: i, restartPolicy: Always}\n  containers:\n  - {name: a, image: i}\n",
    );
    let p = observe(&p, &[("side", running(true))], &[("a", running(true))]);
    assert_eq!(cols(&p), (s("2/2"), s("Running"), s("0")));
    assert_eq!(phase_of(&p), "Running");
}
