use super::*;

const NGINX_ID: &str = "sha256:605c77e624ddb75e6110f997c58876baa13f8754486b461117934b24a9dc3a85";
const NGINX_DIGEST: &str =
    "sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31";
const PAUSE_ID: &str = "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c";
const PAUSE_DIGEST: &str =
    "sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097";
const BUSYBOX_ID: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

fn sample() -> v1::ListImagesResponse {
    v1::ListImagesResponse {
        images: vec![
            v1::Image {
                id: NGINX_ID.into(),
                repo_tags: vec!["docker.io/library/nginx:latest".into()],
                repo_digests: vec![format!("docker.io/library/nginx@{NGINX_DIGEST}")],
                size: 56_712_345,
                ..Default::default()
            },
            v1::Image {
                id: PAUSE_ID.into(),
                repo_tags: vec![],
                repo_digests: vec![format!("registry.k8s.io/pause@{PAUSE_DIGEST}")],
                size: 742_000,
                pinned: true,
                ..Default::default()
            },
            v1::Image {
                id: BUSYBOX_ID.into(),
                repo_tags: vec![
                    "localhost:5000/busybox:1.36".into(),
                    "localhost:5000/busybox:latest".into(),
                ],
                repo_digests: vec![],
                size: 1_240_000,
                uid: Some(v1::Int64Value { value: 0 }),
                username: "nobody".into(),
                ..Default::default()
            },
        ],
    }
}

#[test]
fn sizes_use_three_significant_digits_in_units_of_1000() {
    assert_eq!(format_size(0), "0B");
    assert_eq!(format_size(7), "7B");
    assert_eq!(format_size(999), "999B");
    assert_eq!(format_size(1000), "1kB");
    assert_eq!(format_size(1500), "1.5kB");
    assert_eq!(format_size(742_000), "742kB");
    assert_eq!(format_size(742_400), "742kB");
    assert_eq!(format_size(1_240_000), "1.24MB");
    assert_eq!(format_size(56_712_345), "56.7MB");
    assert_eq!(format_size(100_000), "100kB");
    assert_eq!(format_size(10_000_000_000), "10GB");
    assert_eq!(format_size(u64::MAX), "18.4EB");
    // go-units quirk kept for fidelity: 999.999kB rounds to 1e+03kB in crictl too.
    assert_eq!(format_size(999_999), "1e+03kB");
    assert_eq!(human_size(1_234_567, 4), "1.235MB");
}

#[test]
fn ids_are_truncated_to_13_hex_characters() {
    assert_eq!(truncate_id(NGINX_ID), "605c77e624ddb");
    assert_eq!(truncate_id("605c77e624ddb75e6110"), "605c77e624ddb");
    assert_eq!(truncate_id("short"), "short");
    assert_eq!(truncate_id(""), "");
}

#[test]
fn images_table_matches_crictl_layout() {
    let table = images_table(&sample().images, ImageColumns::default());
    let expected = "\
IMAGE                     TAG                 IMAGE ID            SIZE
docker.io/library/nginx   latest              605c77e624ddb       56.7MB
registry.k8s.io/pause     <none>              e6f1816883972       742kB
localhost:5000/busybox    1.36                3f57d9401f8d4       1.24MB
localhost:5000/busybox    latest              3f57d9401f8d4       1.24MB
";
    assert_eq!(table, expected);
}

#[test]
fn images_table_with_digests_pinned_and_no_trunc() {
    let images = &sample().images[..2];
    let columns = ImageColumns {
        digests: true,
        pinned: true,
        no_trunc: false,
    };
    let expected = "\
IMAGE                     TAG                 DIGEST              IMAGE ID            SIZE                PINNED
docker.io/library/nginx   latest              0d17b565c37bc       605c77e624ddb       56.7MB              false
registry.k8s.io/pause     <none>              7031c1b283388       e6f1816883972       742kB               true
";
    assert_eq!(images_table(images, columns), expected);

    let columns = ImageColumns {
        no_trunc: true,
        ..Default::default()
    };
    let table = images_table(&images[..1], columns);
    let expected = format!(
        "IMAGE                     TAG                 IMAGE ID{}SIZE\n\
         docker.io/library/nginx   latest              {NGINX_ID}   56.7MB\n",
        " ".repeat(NGINX_ID.len() + 3 - "IMAGE ID".len())
    );
    assert_eq!(table, expected);
}

#[test]
fn empty_image_list_prints_only_the_header() {
    assert_eq!(
        images_table(&[], ImageColumns::default()),
        "IMAGE               TAG                 IMAGE ID            SIZE\n"
    );
}

#[test]
fn quiet_ids_are_full_and_unique() {
    let mut images = sample().images;
    images.push(images[0].clone());
    assert_eq!(
        image_ids(&images),
        format!("{NGINX_ID}\n{PAUSE_ID}\n{BUSYBOX_ID}\n")
    );
}

#[test]
fn verbose_listing_has_one_block_per_image() {
    let text = images_verbose(&sample().images[2..]);
    assert_eq!(
        text,
        format!(
            "ID: {BUSYBOX_ID}\nRepoTags: localhost:5000/busybox:1.36\n\
             RepoTags: localhost:5000/busybox:latest\nSize: 1240000\nUid: value:0\n\
             Username: nobody\n\n"
        )
    );
}

#[test]
fn tags_split_at_the_last_colon_only() {
    assert_eq!(
        repo_tag_pairs(&["localhost:5000/app".into()], "x"),
        vec![("localhost:5000/app".to_owned(), "<none>".to_owned())]
    );
    assert_eq!(
        repo_tag_pairs(&["<none>:<none>".into()], "repo"),
        vec![("repo".to_owned(), "<none>".to_owned())]
    );
    assert_eq!(repo_digest_pair(&["bad".into()]).0, "errorName");
}

#[test]
fn image_json_uses_protojson_names_and_string_uint64() {
    let mut image = sample().images[2].clone();
    image.spec = Some(v1::ImageSpec {
        image: "busybox".into(),
        annotations: HashMap::from([("a".to_owned(), "b".to_owned())]),
        ..Default::default()
    });
    let value = image_json(&image);
    let keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "pinned",
            "repoDigests",
            "repoTags",
            "size",
            "spec",
            "uid",
            "username"
        ]
    );
    assert_eq!(value["size"], json!("1240000"));
    assert_eq!(value["uid"], json!({ "value": "0" }));
    assert_eq!(value["repoDigests"], json!([]));
    assert_eq!(
        value["spec"],
        json!({
            "image": "busybox",
            "annotations": { "a": "b" },
            "userSpecifiedImage": "",
            "runtimeHandler": "",
            "imageRef": "",
        })
    );

    let value = image_json(&sample().images[0]);
    assert_eq!(value["uid"], Value::Null);
    assert_eq!(value["spec"], Value::Null);
    assert_eq!(value["pinned"], json!(false));
    assert_eq!(value["username"], json!(""));
}

#[test]
fn list_images_json_wraps_in_images() {
    let value = list_images_json(&sample());
    assert_eq!(value["images"].as_array().map(Vec::len), Some(3));
    assert_eq!(value["images"][0]["id"], json!(NGINX_ID));
    let empty = list_images_json(&v1::ListImagesResponse::default());
    assert_eq!(empty, json!({ "images": [] }));
}

#[test]
fn image_fs_info_json_uses_protojson_names() {
    let usage = v1::FilesystemUsage {
        timestamp: 1_700_000_000_000_000_000,
        fs_id: Some(v1::FilesystemIdentifier {
            mountpoint: "/var/lib/corral/images".into(),
        }),
        used_bytes: Some(v1::UInt64Value { value: 4096 }),
        inodes_used: None,
    };
    let value = image_fs_info_json(&v1::ImageFsInfoResponse {
        image_filesystems: vec![usage],
        container_filesystems: vec![],
    });
    assert_eq!(
        value,
        json!({
            "imageFilesystems": [{
                "timestamp": "1700000000000000000",
                "fsId": { "mountpoint": "/var/lib/corral/images" },
                "usedBytes": { "value": "4096" },
                "inodesUsed": null,
            }],
            "containerFilesystems": [],
        })
    );
}

#[test]
fn runtime_status_and_features_follow_crictl() {
    let status = v1::RuntimeStatus {
        conditions: vec![v1::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            ..Default::default()
        }],
    };
    assert_eq!(
        runtime_status_json(&status),
        json!({ "conditions": [
            { "type": "RuntimeReady", "status": true, "reason": "", "message": "" }
        ]})
    );
    let handlers = [
        v1::RuntimeHandler {
            name: String::new(),
            features: Some(v1::RuntimeHandlerFeatures {
                recursive_read_only_mounts: true,
                user_namespaces: false,
            }),
        },
        v1::RuntimeHandler {
            name: "runc".into(),
            features: None,
        },
    ];
    assert_eq!(
        runtime_handlers_json(&handlers),
        json!([{ "features": { "recursive_read_only_mounts": true } }, { "name": "runc" }])
    );
    let features = v1::RuntimeFeatures {
        supplemental_groups_policy: true,
        user_namespaces_host_network: false,
    };
    assert_eq!(
        runtime_features_json(&features),
        json!({ "supplemental_groups_policy": true })
    );
}

#[test]
fn status_documents_parse_info_values() {
    let info = HashMap::from([
        (
            "config".to_owned(),
            r#"{"root":"/var/lib/corral"}"#.to_owned(),
        ),
        ("plain".to_owned(), "\"quoted text\"".to_owned()),
        ("broken".to_owned(), "{not json".to_owned()),
    ]);
    let doc = status_document(vec![("status", json!({"a": 1}))], &info);
    assert_eq!(
        doc,
        json!({
            "status": { "a": 1 },
            "config": { "root": "/var/lib/corral" },
            "plain": "quoted text",
            "broken": "{not json",
        })
    );
    assert_eq!(combine(vec![json!(1)]), json!(1));
    assert_eq!(combine(vec![json!(1), json!(2)]), json!([1, 2]));
}

#[test]
fn documents_render_as_json_and_yaml() {
    let doc = json!({ "images": [{ "id": "x", "size": "1" }] });
    let text = render(&doc, Format::Json).expect("json");
    assert_eq!(
        text,
        "{\n  \"images\": [\n    {\n      \"id\": \"x\",\n      \"size\": \"1\"\n    }\n  ]\n}"
    );
    let yaml = render(&doc, Format::Yaml).expect("yaml");
    assert!(yaml.contains("id: x"), "{yaml}");
    assert!(
        yaml.contains("size: '1'") || yaml.contains("size: \"1\""),
        "{yaml}"
    );
    assert!(!yaml.ends_with('\n'));
    let long = list_images_json(&sample());
    let yaml = render(&long, Format::Yaml).expect("yaml");
    let digest_line = format!("  - docker.io/library/nginx@{NGINX_DIGEST}\n");
    assert!(yaml.contains(&digest_line), "{yaml}");
    assert!(render(&doc, Format::Table).is_err());
}
