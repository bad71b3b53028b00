//! An image `User` that looks numeric but is not a valid uid (issue 15, item 4): ImageStatus
//! must not report it as a non-root number, CreateContainer must refuse it, and the pod manager
//! must refuse it under `runAsNonRoot`, although the image's `/etc/passwd` maps each form to 0.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use common::kube::{kube_env, running, waiting_message, waiting_reason};
use common::{pull, serve_image, status};
use corral_tests::fixtures::{Compression, Layer, ManifestFormat, busybox_image};
use tonic::Code;

/// The forms the audit tried: each is a name mapped to uid 0 in the hostile image's passwd.
const FORMS: &[&str] = &[
    "4294967296",
    "-1",
    "4294967296:4294967296",
    "+0",
    "00",
    " 0",
];

fn evil_passwd() -> String {
    let mut s = String::from("root:x:0:0:root:/root:/bin/sh\n");
    for f in FORMS {
        let user = f.split(':').next().unwrap_or_default();
        s.push_str(&format!("{user}:x:0:0::/root:/bin/sh\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_like_image_users_never_run_as_root() -> Result<()> {
    let mut k = kube_env().await?;
    let passwd = Layer::new()
        .file("etc/passwd", evil_passwd())
        .build(Compression::Gzip)?;
    let mut images = k.pods.d.images().await?;
    let pod = k.pods.run_pod("imageuser").await?;
    for (i, form) in FORMS.iter().enumerate() {
        let built = busybox_image()?
            .layer(passwd.clone())
            .user(form)
            .build(ManifestFormat::Oci)?;
        let name = format!("evil/user{i}");
        serve_image(&k.pods._fake, &name, "1", &built);
        let image = format!("{}/{name}:1", k.pods._fake.addr());
        pull(&mut images, &image).await?;

        // ImageStatus: never a uid (the old i64 parse said 4294967296 and -1 are non-root).
        let st = status(&mut images, &image).await?.expect("image status");
        assert_eq!(st.uid, None, "{form:?}: ImageStatus uid");
        assert_eq!(st.username, *form, "{form:?}: ImageStatus username");

        // CreateContainer: refused, naming the value; on the old code it ran as root.
        let mut config = k.pods.ctr_config(&format!("c{i}"), &["id", "-u"]);
        config.image = common::spec(&image);
        match k.pods.create(&pod, "imageuser", config).await {
            Err(s) => {
                assert_eq!(s.code(), Code::InvalidArgument, "{form:?}: {s:?}");
                assert!(
                    s.message().contains(&format!("image config User {form:?}")),
                    "{form:?}: {}",
                    s.message()
                );
            }
            Ok(id) => {
                k.pods
                    .rt
                    .start_container(corral_cri_api::v1::StartContainerRequest {
                        container_id: id.clone(),
                    })
                    .await?;
                k.pods.wait_exited(&id, Duration::from_secs(30)).await?;
                let log = std::fs::read_to_string(k.pods.log_file(&format!("c{i}")))?;
                panic!("{form:?}: CreateContainer accepted the image; it ran as: {log}");
            }
        }

        // The pod manager with runAsNonRoot: refused before the container is created.
        let pod_name = format!("nonroot{i}");
        k.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {pod_name}}}
spec:
  restartPolicy: Never
  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: main, image: "{image}", imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}}
"#
        ))
        .await?;
        let p = k
            .wait_pod(
                &pod_name,
                Duration::from_secs(60),
                "refused or running",
                |p| {
                    running(p, "main")
                        || waiting_reason(p, "main") == Some("CreateContainerConfigError")
                },
            )
            .await?;
        assert!(!running(&p, "main"), "{form:?}: started under runAsNonRoot");
        let msg = waiting_message(&p, "main");
        assert!(
            msg.contains("runAsNonRoot") && msg.contains(&format!("image config User {form:?}")),
            "{form:?}: {msg}"
        );
    }
    k.pods.remove_pod(&pod).await?;
    k.delete_all_and_assert_clean().await
}
