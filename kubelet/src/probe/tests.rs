#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use corral_kube::k8s_openapi::api::core::v1::{HTTPHeader, SleepAction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ---- a fake Exec ----

struct FakeExec {
    result: Result<ExecOutput, ExecError>,
    calls: Mutex<Vec<(Vec<String>, Duration)>>,
}

impl FakeExec {
    fn new(result: Result<ExecOutput, ExecError>) -> Self {
        FakeExec {
            result,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl Exec for FakeExec {
    fn exec_sync(
        &self,
        _container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<ExecOutput, ExecError>> + Send + '_>> {
        self.calls.lock().unwrap().push((cmd, timeout));
        let result = self.result.clone();
        Box::pin(async move { result })
    }
}

fn exited(code: i32, stdout: &str, stderr: &str) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        exit_code: code,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    })
}

fn target<'a>(exec: &'a dyn Exec, ports: &'a [ContainerPort], env: &'a [EnvVar]) -> Target<'a> {
    Target {
        container_id: "c1",
        pod_ip: Some(LOCALHOST),
        ports,
        env,
        exec,
    }
}

fn exec_probe_of(cmd: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        ..Probe::default()
    }
}

// ---- exec ----

#[tokio::test]
async fn exec_zero_exit_is_success_with_timeout_and_expansion() {
    let exec = FakeExec::new(exited(0, "fine", ""));
    let env = [
        EnvVar {
            name: "FILE".into(),
            value: Some("/tmp/healthy".into()),
            ..EnvVar::default()
        },
        EnvVar {
            name: "FROM".into(),
            value_from: Some(Default::default()),
            ..EnvVar::default()
        },
    ];
    let mut probe = exec_probe_of(&["cat", "$(FILE)", "$(FROM)x", "$(NOPE)"]);
    probe.timeout_seconds = Some(5);
    assert_eq!(
        run(&probe, &target(&exec, &[], &env)).await,
        Outcome::Success
    );
    let calls = exec.calls.lock().unwrap();
    assert_eq!(
        calls[0],
        (
            vec![
                "cat".to_owned(),
                "/tmp/healthy".to_owned(),
                "x".to_owned(),
                "$(NOPE)".to_owned()
            ],
            Duration::from_secs(5)
        )
    );
}

#[tokio::test]
async fn exec_nonzero_exit_fails_with_output_and_default_timeout() {
    let exec = FakeExec::new(exited(1, "out ", "err"));
    let outcome = run(&exec_probe_of(&["false"]), &target(&exec, &[], &[])).await;
    assert_eq!(outcome, Outcome::Failure("out err".into()));
    assert_eq!(exec.calls.lock().unwrap()[0].1, Duration::from_secs(1));
}

#[tokio::test]
async fn exec_output_is_limited() {
    let big = "x".repeat(MAX_OUTPUT + 100);
    let exec = FakeExec::new(exited(2, &big, "tail"));
    let Outcome::Failure(message) = run(&exec_probe_of(&["x"]), &target(&exec, &[], &[])).await
    else {
        panic!("not a failure");
    };
    assert_eq!(message.len(), MAX_OUTPUT);
}

#[tokio::test]
async fn exec_timeout_is_failure() {
    let exec = FakeExec::new(Err(ExecError::TimedOut));
    let outcome = run(
        &exec_probe_of(&["sh", "-c", "sleep 9"]),
        &target(&exec, &[], &[]),
    )
    .await;
    assert_eq!(
        outcome,
        Outcome::Failure(r#"command "sh -c sleep 9" timed out"#.into())
    );
    assert_eq!(exec.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn exec_error_is_unknown_after_three_tries() {
    let exec = FakeExec::new(Err(ExecError::Failed("no such container".into())));
    let outcome = run(&exec_probe_of(&["true"]), &target(&exec, &[], &[])).await;
    assert_eq!(outcome, Outcome::Unknown("no such container".into()));
    assert_eq!(exec.calls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn no_handler_is_unknown() {
    let exec = FakeExec::new(exited(0, "", ""));
    let outcome = run(&Probe::default(), &target(&exec, &[], &[])).await;
    assert!(matches!(outcome, Outcome::Unknown(_)), "{outcome:?}");
}

// ---- ports ----

#[test]
fn ports_resolve() {
    let ports = [ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        ..ContainerPort::default()
    }];
    assert_eq!(resolve_port(&IntOrString::Int(80), &ports), Ok(80));
    assert_eq!(
        resolve_port(&IntOrString::String("http".into()), &ports),
        Ok(8080)
    );
    assert_eq!(
        resolve_port(&IntOrString::String("81".into()), &ports),
        Ok(81)
    );
    assert!(resolve_port(&IntOrString::String("web".into()), &ports).is_err());
    assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
    assert!(resolve_port(&IntOrString::Int(65536), &ports).is_err());
}

// ---- a tiny HTTP server ----

struct HttpServer {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn respond(head: &str) -> (u16, String, String) {
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    match path.as_str() {
        "/ok" | "/" => (200, String::new(), "ok".into()),
        "/404" => (404, String::new(), "not here".into()),
        "/500" => (500, String::new(), "oops".into()),
        "/same" => (302, "Location: /ok\r\n".into(), String::new()),
        "/same-404" => (302, "Location: /404\r\n".into(), String::new()),
        "/loop" => (302, "Location: /loop\r\n".into(), String::new()),
        "/elsewhere" => (
            302,
            "Location: http://elsewhere.invalid/\r\n".into(),
            "moved".into(),
        ),
        "/elsewhere-big" => (
            302,
            "Location: http://elsewhere.invalid/\r\n".into(),
            "y".repeat(3 * MAX_OUTPUT),
        ),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (200, String::new(), String::new())
        }
        "/defaults" => {
            let ok = header(head, "user-agent") == Some("kube-probe/1.37")
                && header(head, "accept") == Some("*/*")
                && header(head, "host").is_some_and(|h| h.starts_with("127.0.0.1:"));
            (if ok { 200 } else { 400 }, String::new(), String::new())
        }
        "/override" => {
            let ok = header(head, "host") == Some("example.com")
                && header(head, "user-agent") == Some("custom/1")
                && header(head, "x-one") == Some("1");
            (if ok { 200 } else { 400 }, String::new(), String::new())
        }
        _ => (404, String::new(), String::new()),
    }
}

async fn http_server() -> HttpServer {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.first() == Some(&0x16) {
                        // A TLS handshake: answer in plain HTTP, as Go's server does.
                        let _ = stream
                            .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                            .await;
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                record.lock().unwrap().push(head.clone());
                let (code, extra, body) = respond(&head).await;
                let response = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    HttpServer { port, seen }
}

fn http_get(port: IntOrString, path: &str) -> HTTPGetAction {
    HTTPGetAction {
        port,
        path: Some(path.into()),
        ..HTTPGetAction::default()
    }
}

fn http_probe_of(port: u16, path: &str) -> Probe {
    Probe {
        http_get: Some(http_get(IntOrString::Int(i32::from(port)), path)),
        ..Probe::default()
    }
}

async fn probe_http(port: u16, path: &str) -> Outcome {
    let exec = FakeExec::new(exited(0, "", ""));
    run(&http_probe_of(port, path), &target(&exec, &[], &[])).await
}

/// A port nobody listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn http_status_codes() {
    let server = http_server().await;
    assert_eq!(probe_http(server.port, "/ok").await, Outcome::Success);
    assert_eq!(
        probe_http(server.port, "/404").await,
        Outcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    assert_eq!(
        probe_http(server.port, "/500").await,
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
}

#[tokio::test]
async fn http_default_path_and_headers() {
    let server = http_server().await;
    assert_eq!(probe_http(server.port, "/defaults").await, Outcome::Success);
    let exec = FakeExec::new(exited(0, "", ""));
    let mut probe = http_probe_of(server.port, "");
    probe.http_get.as_mut().unwrap().path = None;
    assert_eq!(
        run(&probe, &target(&exec, &[], &[])).await,
        Outcome::Success
    );
    let seen = server.seen.lock().unwrap();
    assert!(
        seen.last().unwrap().starts_with("GET / HTTP/1.1\r\n"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn http_header_overrides_and_named_port() {
    let server = http_server().await;
    let exec = FakeExec::new(exited(0, "", ""));
    let ports = [ContainerPort {
        name: Some("web".into()),
        container_port: i32::from(server.port),
        ..ContainerPort::default()
    }];
    let mut action = http_get(IntOrString::String("web".into()), "/override");
    action.scheme = Some("HTTP".into());
    action.http_headers = Some(vec![
        HTTPHeader {
            name: "host".into(),
            value: "example.com".into(),
        },
        HTTPHeader {
            name: "User-Agent".into(),
            value: "custom/1".into(),
        },
        HTTPHeader {
            name: "X-One".into(),
            value: "1".into(),
        },
    ]);
    let probe = Probe {
        http_get: Some(action),
        ..Probe::default()
    };
    assert_eq!(
        run(&probe, &target(&exec, &ports, &[])).await,
        Outcome::Success
    );

    let mut unnamed = probe.clone();
    unnamed.http_get.as_mut().unwrap().port = IntOrString::String("nope".into());
    let outcome = run(&unnamed, &target(&exec, &ports, &[])).await;
    assert!(
        matches!(outcome, Outcome::Unknown(ref m) if m.contains("nope")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn http_redirects() {
    let server = http_server().await;
    assert_eq!(probe_http(server.port, "/same").await, Outcome::Success);
    assert_eq!(
        probe_http(server.port, "/same-404").await,
        Outcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    assert_eq!(
        probe_http(server.port, "/elsewhere").await,
        Outcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
    let Outcome::Warning(message) = probe_http(server.port, "/elsewhere-big").await else {
        panic!("not a warning");
    };
    assert_eq!(
        message.len(),
        "Probe terminated redirects, Response body: ".len() + MAX_OUTPUT
    );
    let outcome = probe_http(server.port, "/loop").await;
    assert!(
        matches!(outcome, Outcome::Failure(ref m) if m.ends_with("stopped after 10 redirects")),
        "{outcome:?}"
    );
    // Ten requests in all, as Go's client makes before giving up.
    let loops = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.starts_with("GET /loop "))
        .count();
    assert_eq!(loops, 10);
}

#[tokio::test]
async fn http_timeout_and_refused() {
    let server = http_server().await;
    let started = std::time::Instant::now();
    let outcome = probe_http(server.port, "/slow").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let expected = format!(
        "Get \"http://127.0.0.1:{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        server.port
    );
    assert_eq!(outcome, Outcome::Failure(expected));

    let port = closed_port().await;
    let outcome = probe_http(port, "/").await;
    let expected = format!(
        "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
    );
    assert_eq!(outcome, Outcome::Failure(expected));
}

#[tokio::test]
async fn http_without_pod_ip_is_unknown() {
    let exec = FakeExec::new(exited(0, "", ""));
    let mut t = target(&exec, &[], &[]);
    t.pod_ip = None;
    let outcome = run(&http_probe_of(80, "/"), &t).await;
    assert!(matches!(outcome, Outcome::Unknown(_)), "{outcome:?}");
}

// ---- tcpSocket ----

fn tcp_probe_of(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(i32::from(port)),
        }),
        ..Probe::default()
    }
}

#[tokio::test]
async fn tcp_open_and_closed() {
    let exec = FakeExec::new(exited(0, "", ""));
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let open = listener.local_addr().unwrap().port();
    assert_eq!(
        run(&tcp_probe_of(open), &target(&exec, &[], &[])).await,
        Outcome::Success
    );
    drop(listener);
    assert_eq!(
        run(&tcp_probe_of(open), &target(&exec, &[], &[])).await,
        Outcome::Failure(format!(
            "dial tcp 127.0.0.1:{open}: connect: connection refused"
        ))
    );
}

// ---- grpc ----

#[derive(Clone)]
struct Health(Option<ServingStatus>);

impl tonic::server::NamedService for Health {
    const NAME: &'static str = "grpc.health.v1.Health";
}

struct Check(ServingStatus);

impl tonic::server::UnaryService<HealthCheckRequest> for Check {
    type Response = HealthCheckResponse;
    type Future = Pin<
        Box<
            dyn Future<Output = Result<tonic::Response<HealthCheckResponse>, tonic::Status>> + Send,
        >,
    >;

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        let status = if request.get_ref().service == "unknown-service" {
            ServingStatus::ServiceUnknown
        } else {
            self.0
        };
        Box::pin(async move {
            Ok(tonic::Response::new(HealthCheckResponse {
                status: status as i32,
            }))
        })
    }
}

type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

impl tower::Service<HttpRequest> for Health {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let status = self.0;
        Box::pin(async move {
            match status {
                Some(status) if request.uri().path() == HEALTH_CHECK_PATH => {
                    let codec =
                        tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default(
                        );
                    let mut grpc = tonic::server::Grpc::new(codec);
                    Ok(grpc.unary(Check(status), request).await)
                }
                _ => Ok(tonic::Status::unimplemented("no health here").into_http()),
            }
        })
    }
}

async fn grpc_server(status: Option<ServingStatus>) -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Health(status))
            .serve_with_incoming(incoming),
    );
    port
}

async fn probe_grpc(port: u16, service: Option<&str>) -> Outcome {
    let exec = FakeExec::new(exited(0, "", ""));
    let probe = Probe {
        grpc: Some(GRPCAction {
            port: i32::from(port),
            service: service.map(str::to_owned),
            mode: None,
        }),
        ..Probe::default()
    };
    run(&probe, &target(&exec, &[], &[])).await
}

#[tokio::test]
async fn grpc_serving_and_not() {
    let serving = grpc_server(Some(ServingStatus::Serving)).await;
    assert_eq!(probe_grpc(serving, None).await, Outcome::Success);
    assert_eq!(
        probe_grpc(serving, Some("unknown-service")).await,
        Outcome::Failure(r#"service unhealthy (responded with "SERVICE_UNKNOWN")"#.into())
    );
    let not_serving = grpc_server(Some(ServingStatus::NotServing)).await;
    assert_eq!(
        probe_grpc(not_serving, Some("")).await,
        Outcome::Failure(r#"service unhealthy (responded with "NOT_SERVING")"#.into())
    );
}

#[tokio::test]
async fn grpc_unimplemented_and_refused() {
    let none = grpc_server(None).await;
    assert_eq!(
        probe_grpc(none, None).await,
        Outcome::Failure(
            "error: this server does not implement the grpc health protocol \
             (grpc.health.v1.Health): no health here"
                .into()
        )
    );
    let port = closed_port().await;
    let outcome = probe_grpc(port, None).await;
    let prefix = format!("error: failed to connect service at \"127.0.0.1:{port}\": ");
    assert!(
        matches!(outcome, Outcome::Failure(ref m) if m.starts_with(&prefix)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn grpc_against_plain_http_fails() {
    // An HTTP/1.1 server does not speak HTTP/2: a failure, not a hang past the timeout.
    let server = http_server().await;
    let started = std::time::Instant::now();
    let outcome = probe_grpc(server.port, None).await;
    assert!(matches!(outcome, Outcome::Failure(_)), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---- ProbeState ----

fn probe_with(success: Option<i32>, failure: Option<i32>) -> Probe {
    Probe {
        success_threshold: success,
        failure_threshold: failure,
        ..Probe::default()
    }
}

fn ok() -> Outcome {
    Outcome::Success
}

fn bad() -> Outcome {
    Outcome::Failure("no".into())
}

#[test]
fn defaults_and_initial_results() {
    let probe = Probe::default();
    let state = ProbeState::new(&probe, ProbeKind::Readiness);
    assert_eq!(state.period(), Duration::from_secs(10));
    assert_eq!(state.initial_delay(), Duration::ZERO);
    assert_eq!(timeout(&probe), Duration::from_secs(1));
    assert_eq!(state.result(), Some(false));
    assert_eq!(
        ProbeState::new(&probe, ProbeKind::Liveness).result(),
        Some(true)
    );
    assert_eq!(ProbeState::new(&probe, ProbeKind::Startup).result(), None);

    let custom = Probe {
        initial_delay_seconds: Some(5),
        period_seconds: Some(2),
        timeout_seconds: Some(3),
        ..Probe::default()
    };
    let state = ProbeState::new(&custom, ProbeKind::Liveness);
    assert_eq!(state.initial_delay(), Duration::from_secs(5));
    assert_eq!(state.period(), Duration::from_secs(2));
    assert_eq!(timeout(&custom), Duration::from_secs(3));
}

#[test]
fn readiness_thresholds() {
    let mut state = ProbeState::new(&probe_with(Some(2), Some(3)), ProbeKind::Readiness);
    assert_eq!(state.record(&ok()), None);
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&ok()), None);
    assert_eq!(
        state.record(&Outcome::Warning("redirect".into())),
        Some(true)
    );
    assert_eq!(state.result(), Some(true));
    assert_eq!(state.record(&ok()), None);
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&bad()), None);
    // Unknown outcomes are thrown away, not counted and not breaking the run.
    assert_eq!(state.record(&Outcome::Unknown("x".into())), None);
    assert_eq!(state.record(&bad()), Some(false));
    assert_eq!(state.result(), Some(false));
    // Readiness keeps probing after failing.
    assert!(!state.on_hold());
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&ok()), None);
    assert_eq!(state.record(&ok()), Some(true));
}

#[test]
fn readiness_first_success_with_default_threshold() {
    let mut state = ProbeState::new(&Probe::default(), ProbeKind::Readiness);
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&bad()), None);
    // The third failure confirms not-ready, which it already was.
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&ok()), Some(true));
}

#[test]
fn liveness_failure_holds_until_reset() {
    let mut state = ProbeState::new(&probe_with(None, Some(2)), ProbeKind::Liveness);
    assert_eq!(state.record(&ok()), None);
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&bad()), Some(false));
    assert!(state.on_hold());
    assert_eq!(state.record(&ok()), None);
    assert_eq!(state.result(), Some(false));
    state.reset();
    assert!(!state.on_hold());
    assert_eq!(state.result(), Some(true));
    assert_eq!(state.record(&bad()), None);
    assert_eq!(state.record(&bad()), Some(false));
}

#[test]
fn startup_succeeds_then_fails() {
    let mut state = ProbeState::new(&probe_with(None, Some(1)), ProbeKind::Startup);
    assert_eq!(state.result(), None);
    assert_eq!(state.record(&ok()), Some(true));
    assert_eq!(state.record(&bad()), Some(false));
    assert!(state.on_hold());
    state.reset();
    assert_eq!(state.result(), None);
    assert_eq!(state.record(&bad()), Some(false));
}

// ---- lifecycle handlers ----

fn exec_handler_of(cmd: &[&str]) -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        ..LifecycleHandler::default()
    }
}

#[tokio::test]
async fn exec_handler() {
    let exec = FakeExec::new(exited(0, "", ""));
    // No expansion for handlers, and no timeout.
    let env = [EnvVar {
        name: "A".into(),
        value: Some("a".into()),
        ..EnvVar::default()
    }];
    run_handler(
        &exec_handler_of(&["echo", "$(A)"]),
        &target(&exec, &[], &env),
    )
    .await
    .unwrap();
    assert_eq!(
        exec.calls.lock().unwrap()[0],
        (vec!["echo".to_owned(), "$(A)".to_owned()], Duration::ZERO)
    );

    let exec = FakeExec::new(exited(3, "half", " bad"));
    let err = run_handler(
        &exec_handler_of(&["sh", "-c", "exit 3"]),
        &target(&exec, &[], &[]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.event_message("web", "p_default(uid)"),
        "Exec lifecycle hook ([sh -c exit 3]) for Container \"web\" in Pod \"p_default(uid)\" \
         failed - error: command 'sh -c exit 3' exited with 3:  bad, message: \"half bad\""
    );
}

fn http_handler_of(port: u16, path: &str) -> LifecycleHandler {
    LifecycleHandler {
        http_get: Some(http_get(IntOrString::Int(i32::from(port)), path)),
        ..LifecycleHandler::default()
    }
}

#[tokio::test]
async fn http_handler_ignores_status_and_fails_on_refusal() {
    let server = http_server().await;
    let exec = FakeExec::new(exited(0, "", ""));
    let t = target(&exec, &[], &[]);
    run_handler(&http_handler_of(server.port, "/500"), &t)
        .await
        .unwrap();
    let head = server.seen.lock().unwrap()[0].clone();
    assert_eq!(header(&head, "user-agent"), Some("kube-lifecycle/1.37"));

    let port = closed_port().await;
    let err = run_handler(&http_handler_of(port, "/stop"), &t)
        .await
        .unwrap_err();
    assert_eq!(
        err.event_message("web", "p_default(uid)"),
        format!(
            "HTTP lifecycle hook (/stop) for Container \"web\" in Pod \"p_default(uid)\" failed - \
             error: Get \"http://127.0.0.1:{port}/stop\": dial tcp 127.0.0.1:{port}: connect: \
             connection refused"
        )
    );

    let mut no_ip = t;
    no_ip.pod_ip = None;
    assert!(
        run_handler(&http_handler_of(server.port, "/"), &no_ip)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn https_handler_falls_back_to_http() {
    let server = http_server().await;
    let exec = FakeExec::new(exited(0, "", ""));
    let mut handler = http_handler_of(server.port, "/ok");
    handler.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    run_handler(&handler, &target(&exec, &[], &[]))
        .await
        .unwrap();
    assert!(
        server
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.starts_with("GET /ok "))
    );
}

#[tokio::test]
async fn sleep_and_invalid_handlers() {
    let exec = FakeExec::new(exited(0, "", ""));
    let t = target(&exec, &[], &[]);
    let sleep = LifecycleHandler {
        sleep: Some(SleepAction { seconds: 0 }),
        ..LifecycleHandler::default()
    };
    run_handler(&sleep, &t).await.unwrap();
    let tcp = LifecycleHandler {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(80),
        }),
        ..LifecycleHandler::default()
    };
    assert!(matches!(
        run_handler(&tcp, &t).await,
        Err(HandlerError::Invalid(_))
    ));
    assert!(matches!(
        run_handler(&LifecycleHandler::default(), &t).await,
        Err(HandlerError::Invalid(_))
    ));
}
