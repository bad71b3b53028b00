use super::*;

fn image(id: &str, tags: &[&str], digests: &[&str]) -> v1::Image {
    v1::Image {
        id: id.into(),
        repo_tags: tags.iter().map(|s| s.to_string()).collect(),
        repo_digests: digests.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn images_sort_by_tag_then_digest_then_id() {
    let mut images = vec![
        image("sha256:3", &[], &[]),
        image("sha256:2", &["b:1"], &[]),
        image("sha256:1", &[], &["a@sha256:x"]),
        image("sha256:0", &["c:1"], &[]),
    ];
    sort_images(&mut images);
    let ids: Vec<_> = images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["sha256:1", "sha256:2", "sha256:0", "sha256:3"]);
}

#[test]
fn creds_split_like_crictl() {
    assert_eq!(
        parse_creds("user:pa:ss").ok(),
        Some(("user".into(), "pa:ss".into()))
    );
    assert_eq!(
        parse_creds("user").ok(),
        Some(("user".into(), String::new()))
    );
    assert!(parse_creds(":pass").is_err());
    assert!(parse_creds("").is_err());
}

#[test]
fn annotations_need_a_key() {
    let parsed = parse_annotations(&["a=b=c".into()]).expect("valid");
    assert_eq!(parsed.get("a").map(String::as_str), Some("b=c"));
    assert!(parse_annotations(&["=x".into()]).is_err());
    assert!(parse_annotations(&["novalue".into()]).is_err());
}

#[test]
fn debug_output_hides_secrets() {
    let request = v1::PullImageRequest {
        auth: Some(v1::AuthConfig {
            username: "me".into(),
            password: "hunter2".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let text = format!("{:?}", redacted(&request));
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("me"), "{text}");
}

#[test]
fn deleted_names_prefer_tags_then_digests() {
    let i = image("sha256:1", &["a:1", "a:2"], &["a@sha256:x"]);
    assert_eq!(deleted_names(i, "a:1"), ["a:1", "a:2"]);
    let i = image("sha256:1", &[], &["a@sha256:x"]);
    assert_eq!(deleted_names(i, "sha256:1"), ["a@sha256:x"]);
    let i = image("sha256:1", &[], &[]);
    assert_eq!(deleted_names(i, "sha256:1"), ["sha256:1"]);
}
