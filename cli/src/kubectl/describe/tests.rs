use super::*;

const POD: &str = r#"{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web", "namespace": "default", "uid": "u1",
    "labels": {"app": "web", "tier": "fe"},
    "creationTimestamp": "2025-01-01T00:00:00Z"},
  "spec": {"nodeName": "host1", "serviceAccountName": "default",
    "containers": [{"name": "web", "image": "nginx:1.27",
      "command": ["nginx"], "args": ["-g", "daemon off;"],
      "ports": [{"containerPort": 80, "protocol": "TCP"}],
      "env": [{"name": "MODE", "value": "prod"},
              {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}],
      "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
      "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}},
      "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
    "volumes": [{"name": "data", "emptyDir": {}}]},
  "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.88.0.5",
    "podIPs": [{"ip": "10.88.0.5"}], "startTime": "2025-01-01T00:00:01Z", "qosClass": "Burstable",
    "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
    "containerStatuses": [{"name": "web", "containerID": "corral://abc", "image": "nginx:1.27",
      "imageID": "docker.io/library/nginx@sha256:ff", "ready": true, "restartCount": 1,
      "state": {"running": {"startedAt": "2025-01-01T00:00:03Z"}},
      "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
        "startedAt": "2025-01-01T00:00:02Z", "finishedAt": "2025-01-01T00:00:02Z"}}}]}
}"#;

fn event(kind: &str, reason: &str, msg: &str, count: i32, first: i64, last: i64) -> corral::Event {
    corral::Event {
        r#type: kind.into(),
        reason: reason.into(),
        message: msg.into(),
        count,
        first_timestamp: first,
        last_timestamp: last,
        field_path: String::new(),
        source: "kubelet".into(),
    }
}

#[test]
fn describes_a_pod_like_kubectl() {
    let pod: Pod = serde_json::from_str(POD).expect("pod");
    let now: Timestamp = "2025-01-01T00:02:00Z".parse().expect("now");
    let t0 = "2025-01-01T00:00:00Z"
        .parse::<Timestamp>()
        .expect("t0")
        .as_second();
    let evs = [
        event(
            "Normal",
            "Pulled",
            "Container image \"nginx:1.27\" already present on machine",
            3,
            t0 + 1,
            t0 + 110,
        ),
        event(
            "Warning",
            "BackOff",
            "Back-off restarting failed container web",
            1,
            t0 + 2,
            t0 + 2,
        ),
    ];
    let got = describe_pod(&pod, &evs, now);
    let want = "\
Name:             web
Namespace:        default
Priority:         0
Service Account:  default
Node:             host1/10.0.0.1
Start Time:       Wed, 01 Jan 2025 00:00:01 +0000
Labels:           app=web
                  tier=fe
Annotations:      <none>
Status:           Running
IP:               10.88.0.5
IPs:
  IP:  10.88.0.5
Containers:
  web:
    Container ID:  corral://abc
    Image:         nginx:1.27
    Image ID:      docker.io/library/nginx@sha256:ff
    Port:          80/TCP
    Host Port:     0/TCP
    Command:
      nginx
    Args:
      -g
      daemon off;
    State:          Running
      Started:      Wed, 01 Jan 2025 00:00:03 +0000
    Last State:     Terminated
      Reason:       Error
      Exit Code:    137
      Started:      Wed, 01 Jan 2025 00:00:02 +0000
      Finished:     Wed, 01 Jan 2025 00:00:02 +0000
    Ready:          True
    Restart Count:  1
    Limits:
      memory:  128Mi
    Requests:
      cpu:      100m
      memory:   64Mi
    Readiness:  http-get http://:80/healthz delay=0s timeout=1s period=10s #success=1 #failure=3
    Environment:
      MODE:  prod
      PASS:  <set to the key 'pw' in secret 'creds'>  Optional: false
    Mounts:
      /data from data (rw)
Conditions:
  Type          Status
  Initialized   True 
  Ready         True 
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      
    SizeLimit:   <unset>
QoS Class:       Burstable
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type     Reason   Age                 From     Message
  ----     ------   ----                ----     -------
  Warning  BackOff  118s                kubelet  Back-off restarting failed container web
  Normal   Pulled   10s (x3 over 119s)  kubelet  Container image \"nginx:1.27\" already present on machine
";
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {i}");
        }
        assert_eq!(got, want);
    }
}

#[test]
fn no_events_and_probes() {
    let mut pod: Pod = serde_json::from_str(POD).expect("pod");
    pod.status = None;
    let now: Timestamp = "2025-01-01T00:02:00Z".parse().expect("now");
    let got = describe_pod(&pod, &[], now);
    assert!(
        got.ends_with("Tolerations:     <none>\nEvents:          <none>\n"),
        "{got}"
    );
    assert!(got.contains("\nNode:             host1/\n"), "{got}");
    assert!(got.contains("QoS Class:       Burstable\n"), "{got}");
    let p: Probe = serde_json::from_str(r#"{"exec":{"command":["cat","/ok"]},"periodSeconds":5}"#)
        .expect("probe");
    assert_eq!(
        probe(&p),
        "exec [cat /ok] delay=0s timeout=1s period=5s #success=1 #failure=3"
    );
    let p: Probe = serde_json::from_str(r#"{"tcpSocket":{"port":"http"}}"#).expect("probe");
    assert_eq!(
        probe(&p),
        "tcp-socket :http delay=0s timeout=1s period=10s #success=1 #failure=3"
    );
}
