//! The server around the sessions: tokens, routing and HTTP errors, TLS, shutdown.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use corral_streaming::token::TokenError;
use corral_streaming::{
    AttachSpec, ExecSpec, PortForwardSpec, RequestError, ServerConfig, StreamingServer, TlsConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
}

#[tokio::test]
async fn unknown_tokens_and_paths_are_404() {
    let (server, _backend) = start().await;
    let base = server.base_url().to_owned();
    let token = "A".repeat(corral_streaming::token::TOKEN_LEN);
    assert_eq!(
        connect_status(&format!("{base}/exec/{token}"), &[]).await,
        404
    );
    assert_eq!(
        connect_status(&format!("{base}/attach/nope"), &[]).await,
        404
    );
    let addr = server.local_addr();
    for path in ["/", "/exec/", "/logs/x", "/exec/a/b", "/portforward/x"] {
        let (code, _) = raw_request(addr, &get(path, "")).await;
        assert_eq!(code, 404, "{path}");
    }
    // A token is only good for its own kind of request.
    let url = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    let wrong = url.replace("/exec/", "/attach/");
    assert_eq!(connect_status(&wrong, &[]).await, 404);
    assert_eq!(
        connect_status(&url, &[]).await,
        404,
        "the failed try used it up"
    );
}

#[tokio::test]
async fn tokens_are_single_use() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    assert_eq!(server.stats().outstanding_tokens, 1);
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(connect_status(&url, &["v4.channel.k8s.io"]).await, 404);
    let received = receive_all(&mut ws, false).await;
    assert!(received.closed);
    assert_eq!(server.stats().outstanding_tokens, 0);
}

#[tokio::test]
async fn tokens_expire() {
    let (server, _backend) = start_with(ServerConfig {
        token_ttl: Duration::from_millis(200),
        ..ServerConfig::default()
    })
    .await;
    let url = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(connect_status(&url, &["v4.channel.k8s.io"]).await, 404);
}

#[tokio::test]
async fn outstanding_tokens_are_bounded() {
    let (server, _backend) = start_with(ServerConfig {
        max_tokens: 2,
        ..ServerConfig::default()
    })
    .await;
    let spec = exec_spec(&["true"], false, true, false);
    let first = server.exec_url(spec.clone()).unwrap();
    server.exec_url(spec.clone()).unwrap();
    assert_eq!(
        server.exec_url(spec.clone()),
        Err(RequestError::Token(TokenError::TooManyInFlight { max: 2 }))
    );
    // Using one frees a place.
    let (mut ws, _) = connect(&first, &["v4.channel.k8s.io"]).await.unwrap();
    receive_all(&mut ws, false).await;
    server.exec_url(spec).unwrap();
}

#[tokio::test]
async fn requests_are_checked_like_the_kubelet_does() {
    let (server, _backend) = start().await;
    let bad = |spec: ExecSpec| server.exec_url(spec).unwrap_err();
    let ok = exec_spec(&["true"], true, true, false);
    assert!(matches!(
        bad(ExecSpec {
            container_id: String::new(),
            ..ok.clone()
        }),
        RequestError::Invalid(_)
    ));
    assert!(matches!(
        bad(ExecSpec {
            tty: true,
            stderr: true,
            ..ok.clone()
        }),
        RequestError::Invalid("tty and stderr cannot both be true")
    ));
    assert!(matches!(
        bad(ExecSpec {
            stdin: false,
            stdout: false,
            ..ok.clone()
        }),
        RequestError::Invalid(_)
    ));
    assert!(matches!(
        bad(ExecSpec {
            cmd: vec![],
            ..ok.clone()
        }),
        RequestError::Invalid(_)
    ));
    assert!(
        server
            .attach_url(AttachSpec {
                container_id: "c".into(),
                tty: false,
                stdin: false,
                stdout: false,
                stderr: false,
            })
            .is_err()
    );
    for ports in [vec![0], vec![1; 33]] {
        assert!(
            server
                .port_forward_url(PortForwardSpec {
                    pod_sandbox_id: "s".into(),
                    ports,
                })
                .is_err()
        );
    }
    assert!(
        server
            .port_forward_url(PortForwardSpec {
                pod_sandbox_id: String::new(),
                ports: vec![],
            })
            .is_err()
    );
}

#[tokio::test]
async fn requests_without_a_supported_upgrade_are_refused() {
    let (server, _backend) = start().await;
    let addr = server.local_addr();
    let spec = exec_spec(&["true"], false, true, false);

    let url = server.exec_url(spec.clone()).unwrap();
    let (code, text) = raw_request(addr, &get(path_of(&url), "")).await;
    assert_eq!(code, 400);
    assert!(text.contains("WebSocket or SPDY/3.1"), "{text}");

    let url = server.exec_url(spec.clone()).unwrap();
    // SPDY with no remote-command protocol in common: 403, as the kubelet answers.
    let spdy = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n";
    let (code, text) = raw_request(addr, &get(path_of(&url), spdy)).await;
    assert_eq!(code, 403);
    assert!(text.contains("v9.channel.k8s.io"), "{text}");

    let url = server.exec_url(spec.clone()).unwrap();
    let put = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        path_of(&url)
    );
    let (code, text) = raw_request(addr, &put).await;
    assert_eq!(code, 405);
    assert!(
        text.to_ascii_lowercase().contains("allow: get, post"),
        "{text}"
    );

    // A WebSocket handshake with POST, or an old version.
    let ws_headers = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let url = server.exec_url(spec.clone()).unwrap();
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\n{ws_headers}Sec-WebSocket-Version: 13\r\n\r\n",
        path_of(&url)
    );
    assert_eq!(raw_request(addr, &post).await.0, 400);
    let url = server.exec_url(spec).unwrap();
    let old = get(
        path_of(&url),
        &format!("{ws_headers}Sec-WebSocket-Version: 8\r\n"),
    );
    let (code, text) = raw_request(addr, &old).await;
    assert_eq!(code, 426);
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{text}"
    );
}

#[tokio::test]
async fn tls_serves_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_path, key_path) = make_pki(dir.path());
    let backend = FakeBackend::default();
    let server = StreamingServer::start(
        ServerConfig {
            tls: Some(TlsConfig {
                cert_path,
                key_path,
            }),
            ..ServerConfig::default()
        },
        Arc::new(backend),
    )
    .await
    .unwrap();
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let url = server
        .exec_url(exec_spec(&["echo", "over tls"], false, true, false))
        .unwrap();

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut request = url
        .replacen("https://", "wss://", 1)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel_text(1), "over tls\n");
    assert_eq!(received.close_code, Some(1000));

    // Plain HTTP to the TLS port gets nowhere.
    let plain = exec_spec(&["true"], false, true, false);
    let url = server.exec_url(plain).unwrap();
    assert!(
        connect(&url.replacen("https://", "http://", 1), &[])
            .await
            .is_err()
    );
    server.shutdown().await;
}

/// A CA, and a certificate it signs for 127.0.0.1; returns the CA PEM and the server's files.
fn make_pki(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "streaming test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca.pem(), cert_path, key_path)
}

#[tokio::test]
async fn bad_tls_files_fail_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = StreamingServer::start(
        ServerConfig {
            tls: Some(TlsConfig {
                cert_path: missing.clone(),
                key_path: missing,
            }),
            ..ServerConfig::default()
        },
        Arc::new(FakeBackend::default()),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn shutdown_ends_sessions_and_kills_execs() {
    let (server, backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "echo up; exec sleep 1000"],
            false,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    loop {
        let msg = futures::StreamExt::next(&mut ws).await.unwrap().unwrap();
        if msg.into_data().as_ref() == b"\x01up\n" {
            break;
        }
    }
    assert_eq!(server.stats().sessions, 1);
    let addr = server.local_addr();
    tokio::time::timeout(WAIT, server.shutdown()).await.unwrap();
    assert_eq!(backend.observed.live.load(Ordering::SeqCst), 0);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
