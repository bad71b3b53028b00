use clap::Parser;

use super::*;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: PsArgs,
}

fn args(flags: &[&str]) -> PsArgs {
    Wrap::try_parse_from(std::iter::once("ps").chain(flags.iter().copied()))
        .expect("parses")
        .args
}

fn container(id: &str, image: &str) -> v1::Container {
    v1::Container {
        id: id.into(),
        pod_sandbox_id: "9a8b7c6d5e4f3a2b1c0d".into(),
        metadata: Some(v1::ContainerMetadata {
            name: "web".into(),
            attempt: 2,
        }),
        image: Some(v1::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        image_ref: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741".into(),
        state: v1::ContainerState::ContainerRunning as i32,
        created_at: 0,
        ..Default::default()
    }
}

#[test]
fn default_filter_is_running_only() {
    let filter = container_filter(&args(&[])).expect("ok").expect("filter");
    assert_eq!(
        filter.state,
        Some(v1::ContainerStateValue {
            state: v1::ContainerState::ContainerRunning as i32
        })
    );
    assert_eq!(container_filter(&args(&["-a"])).expect("ok"), None);
    assert_eq!(container_filter(&args(&["--last", "2"])).expect("ok"), None);
}

#[test]
fn filter_carries_id_pod_state_and_labels() {
    let filter = container_filter(&args(&[
        "--id", "abc", "--pod", "p1", "--state", "Exited", "--label", "a=1", "--label", "b=2",
    ]))
    .expect("ok")
    .expect("filter");
    assert_eq!(filter.id, "abc");
    assert_eq!(filter.pod_sandbox_id, "p1");
    assert_eq!(
        filter.state.map(|s| s.state),
        Some(v1::ContainerState::ContainerExited as i32)
    );
    assert_eq!(filter.label_selector.len(), 2);
    assert_eq!(filter.label_selector["b"], "2");
}

#[test]
fn images_match_by_name_reference_or_id_prefix() {
    let c = container("c", "docker.io/library/busybox:latest");
    assert!(image_matches(&c, "busybox"));
    assert!(image_matches(&c, "busybox:latest"));
    assert!(image_matches(&c, "docker.io/library/busybox:latest"));
    assert!(image_matches(&c, "3f57d94"));
    assert!(image_matches(&c, "sha256:3f57d94"));
    assert!(!image_matches(&c, "busybox:1.36"));
    assert!(!image_matches(&c, "nginx"));
    assert_eq!(
        normalize_image("localhost:5000/app"),
        "localhost:5000/app:latest"
    );
    assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
}

#[test]
fn table_has_crictl_columns_and_truncates() {
    let mut labeled = container("0123456789abcdef0123", "busybox");
    labeled
        .labels
        .insert(POD_NAME_LABEL.into(), "from-label".into());
    let image_id = container(
        "fedcba9876543210",
        "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741",
    );
    let mut names = HashMap::new();
    names.insert("9a8b7c6d5e4f3a2b1c0d".to_owned(), "from-list".to_owned());
    let table = containers_table(&[labeled, image_id], &names, false, 3_000_000_000);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        [
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD"
        ]
    );
    assert_eq!(
        lines[1],
        [
            "0123456789abc",
            "busybox",
            "3 seconds ago",
            "Running",
            "web",
            "2",
            "9a8b7c6d5e4f3",
            "from-label"
        ]
    );
    assert_eq!(lines[2][1], "3f57d9401f8d4");
    assert_eq!(lines[2][7], "from-list");
    let full = containers_table(
        &[container("0123456789abcdef0123", "b")],
        &HashMap::new(),
        true,
        0,
    );
    assert!(full.contains("0123456789abcdef0123"), "{full}");
    assert!(full.trim_end().ends_with("unknown"), "{full}");
}
