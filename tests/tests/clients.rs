//! Clients other than Go's gRPC stack. gRPC C-core (Python, C++, Ruby, PHP, C#) and grpc-java
//! send the socket path as `:authority` when they dial `unix:///path`, some percent-encoded; the
//! daemon must answer them as it answers crictl's `localhost`. The requests are written as raw
//! HTTP/2 frames, since no Rust client lets an `:authority` that is not a URI authority through.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use corral_tests::daemon::TestDaemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame");
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits zero.
fn hpack_int(out: &mut Vec<u8>, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(u8::try_from(value).expect("below the prefix"));
        return;
    }
    out.push(u8::try_from(max).expect("a prefix"));
    value -= max;
    while value >= 128 {
        out.push(u8::try_from(value % 128).expect("7 bits") | 0x80);
        value /= 128;
    }
    out.push(u8::try_from(value).expect("7 bits"));
}

/// A header block of literal fields without indexing, with literal names and no Huffman code:
/// every byte of every value reaches the server as written.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        hpack_int(&mut block, 7, name.len());
        block.extend(name.as_bytes());
        hpack_int(&mut block, 7, value.len());
        block.extend(value.as_bytes());
    }
    block
}

/// Makes one unary gRPC call on a new connection with `authority` as `:authority` (none when
/// `None`) and returns the response message. A refused stream is an error naming the HTTP/2
/// error code.
async fn call(
    socket: &str,
    authority: Option<&str>,
    method: &str,
    message: &[u8],
) -> Result<Vec<u8>> {
    let mut conn = UnixStream::connect(socket).await?;
    let mut fields = vec![(":method", "POST"), (":scheme", "http"), (":path", method)];
    if let Some(authority) = authority {
        fields.push((":authority", authority));
    }
    fields.extend([("content-type", "application/grpc"), ("te", "trailers")]);
    let mut body = vec![0u8];
    body.extend(u32::try_from(message.len())?.to_be_bytes());
    body.extend(message);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, 1, &header_block(&fields)));
    out.extend(frame(DATA, END_STREAM, 1, &body));
    conn.write_all(&out).await?;
    tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn))
        .await
        .context("no answer within 10 s")?
}

/// Reads frames until stream 1 ends; returns the gRPC message it carried.
async fn read_response(conn: &mut UnixStream) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)
            .await
            .context("the connection ended")?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).await?;
        match kind {
            SETTINGS if flags & ACK == 0 => conn.write_all(&frame(SETTINGS, ACK, 0, &[])).await?,
            RST_STREAM if stream == 1 => {
                let code = u32::from_be_bytes(payload[..4].try_into()?);
                bail!("the daemon reset the stream with HTTP/2 error code {code}");
            }
            GOAWAY => bail!("the daemon sent GOAWAY: {payload:?}"),
            DATA if stream == 1 => data.extend(&payload),
            _ => {}
        }
        if stream == 1 && flags & END_STREAM != 0 {
            break;
        }
    }
    // A gRPC message: a compression flag, a 4-byte length, the bytes; none on an error status.
    if data.len() < 5 || data[0] != 0 {
        bail!("no gRPC message in the response: {data:?}");
    }
    Ok(data[5..].to_vec())
}

fn percent_encoded(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn any_authority_a_grpc_client_sends_over_the_socket_is_answered() -> Result<()> {
    let d = TestDaemon::start().await?;
    let socket = d.socket().display().to_string();
    let encoded = percent_encoded(&socket);
    let unix_uri = format!("unix://{socket}");
    let authorities = [
        Some(socket.as_str()),   // C-core before 1.57, grpc-java
        Some(encoded.as_str()),  // C-core from 1.57 on
        Some(unix_uri.as_str()), // clients that pass the target through
        Some("localhost"),       // grpc-go (crictl, the kubelet)
        Some(""),
        None,
    ];
    for authority in authorities {
        // The CRI runtime service: VersionRequest { version: "v1" }.
        let version = call(
            &socket,
            authority,
            "/runtime.v1.RuntimeService/Version",
            b"\x0a\x02v1",
        )
        .await
        .with_context(|| format!("Version with :authority {authority:?}"))?;
        assert!(
            version.windows(6).any(|w| w == b"corral"),
            "VersionResponse names the runtime: {version:?}"
        );
        // The CRI image service: ImageFsInfoRequest {}.
        call(
            &socket,
            authority,
            "/runtime.v1.ImageService/ImageFsInfo",
            b"",
        )
        .await
        .with_context(|| format!("ImageFsInfo with :authority {authority:?}"))?;
        // The pod manager's service: GetRequest { kind: "Pod" }.
        call(
            &socket,
            authority,
            "/corral.v1.KubeService/Get",
            b"\x0a\x03Pod",
        )
        .await
        .with_context(|| format!("KubeService/Get with :authority {authority:?}"))?;
    }
    Ok(())
}

/// The metrics endpoint (HTTP/1.1) answers whatever `Host` a scraper on the same machine sends.
#[tokio::test]
async fn the_metrics_endpoint_answers_any_host_header() -> Result<()> {
    let d = TestDaemon::start_with(corral_tests::daemon::DaemonOptions {
        extra_config: "[metrics]\naddress = \"127.0.0.1:0\"\n".into(),
        ..Default::default()
    })
    .await?;
    let url = crate::metrics::metrics_url(&d).await?;
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .context("an address in the URL")?
        .to_owned();
    let socket = d.socket().display().to_string();
    for host in [Some(socket.as_str()), Some(""), Some("localhost"), None] {
        let mut conn = tokio::net::TcpStream::connect(&addr).await?;
        let host_line = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        let request = format!("GET /metrics HTTP/1.1\r\n{host_line}Connection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut response)).await??;
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains("corral_"),
            "Host {host:?}: {}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}
