//! The remote command protocol (exec, attach) as the kubelet speaks it, apart from any transport:
//! the stream roles and their WebSocket channel numbers, the protocol versions, terminal resize
//! messages and the `metav1.Status` written on the error stream.
//!
//! Sources: `k8s.io/apimachinery/pkg/util/remotecommand/constants.go` (versions, channel
//! numbers, `NonZeroExitCode`/`ExitCode`), `k8s.io/kubelet/pkg/cri/streaming/remotecommand/`
//! `httpstream.go` (SPDY stream types, v1 vs v4 status writing, resize decoding) and `exec.go`
//! (the statuses), `k8s.io/api/core/v1` (`streamType` header and its values).

use serde::{Deserialize, Serialize};

use crate::backend::{AttachSpec, ExecSpec};

/// SPDY header naming a stream's role (`api.StreamType`); SPDY/3 sends header names lowercased.
pub const STREAM_TYPE_HEADER: &str = "streamtype";
/// WebSocket channel byte of the v5 CLOSE signal: `[255, channel]` half-closes `channel`.
pub const CLOSE_SIGNAL_CHANNEL: u8 = 255;

/// The role of one stream of a remote command session. On WebSocket the role is the channel
/// number (the first byte of each message); on SPDY it is the `streamtype` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// Client → process, channel 0.
    Stdin,
    /// Process → client, channel 1.
    Stdout,
    /// Process → client, channel 2.
    Stderr,
    /// Server → client: the final status, channel 3.
    Error,
    /// Client → server: terminal sizes as JSON, channel 4.
    Resize,
}

impl StreamType {
    pub const ALL: [StreamType; 5] = [
        StreamType::Stdin,
        StreamType::Stdout,
        StreamType::Stderr,
        StreamType::Error,
        StreamType::Resize,
    ];

    /// The `streamtype` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamType::Stdin => "stdin",
            StreamType::Stdout => "stdout",
            StreamType::Stderr => "stderr",
            StreamType::Error => "error",
            StreamType::Resize => "resize",
        }
    }

    /// Parses a `streamtype` header value (exact, as the kubelet compares it).
    pub fn from_header(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The WebSocket channel number (the POSIX fd for stdin, stdout, stderr).
    pub const fn channel(self) -> u8 {
        match self {
            StreamType::Stdin => 0,
            StreamType::Stdout => 1,
            StreamType::Stderr => 2,
            StreamType::Error => 3,
            StreamType::Resize => 4,
        }
    }
}

/// Remote command protocol versions. Over WebSocket the subprotocol names these (with `base64.`
/// text variants for v1 and v4); over SPDY the `X-Stream-Protocol-Version` header does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `channel.k8s.io`: the status is plain text, written only on failure.
    V1,
    /// `v2.channel.k8s.io`: fixes v1's stream handling.
    V2,
    /// `v3.channel.k8s.io`: adds terminal resizing.
    V3,
    /// `v4.channel.k8s.io`: the status is a JSON `metav1.Status` carrying the exit code.
    V4,
    /// `v5.channel.k8s.io`: adds the CLOSE signal (WebSocket only).
    V5,
}

impl Protocol {
    /// The protocols an SPDY connection may negotiate, preferred first. The kubelet's SPDY server
    /// has handlers for v1 to v4 only, so v5 (whose only change is a WebSocket signal SPDY does
    /// not need) is not offered there.
    pub const SPDY: [Protocol; 4] = [Protocol::V4, Protocol::V3, Protocol::V2, Protocol::V1];

    /// The protocol name, as in `X-Stream-Protocol-Version` and the binary WebSocket subprotocol.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "channel.k8s.io",
            Protocol::V2 => "v2.channel.k8s.io",
            Protocol::V3 => "v3.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// Parses a protocol name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Protocol::V1,
            Protocol::V2,
            Protocol::V3,
            Protocol::V4,
            Protocol::V5,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// Whether the client may send terminal sizes (v3 and later).
    pub fn supports_resize(self) -> bool {
        self >= Protocol::V3
    }

    /// Whether the error stream carries a JSON `metav1.Status` (v4 and later).
    pub fn json_status(self) -> bool {
        self >= Protocol::V4
    }

    /// Whether the client may half-close a channel with `[255, channel]` (v5, WebSocket).
    pub fn supports_close_signal(self) -> bool {
        self >= Protocol::V5
    }
}

/// Which streams a session has, from the stored CRI request (the kubelet's `Options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// How many streams an SPDY client opens for this session: error, plus each requested one,
    /// plus resize with a TTY when the protocol knows it (`createHTTPStreamStreams`).
    pub fn expected_spdy_streams(&self, protocol: Protocol) -> usize {
        1 + usize::from(self.stdin)
            + usize::from(self.stdout)
            + usize::from(self.stderr)
            + usize::from(self.tty && protocol.supports_resize())
    }
}

impl From<&ExecSpec> for StreamOptions {
    fn from(spec: &ExecSpec) -> Self {
        Self {
            stdin: spec.stdin,
            stdout: spec.stdout,
            stderr: spec.stderr,
            tty: spec.tty,
        }
    }
}

impl From<&AttachSpec> for StreamOptions {
    fn from(spec: &AttachSpec) -> Self {
        Self {
            stdin: spec.stdin,
            stdout: spec.stdout,
            stderr: spec.stderr,
            tty: spec.tty,
        }
    }
}

/// `metav1.ListMeta` as the status carries it: always present, always empty (`"metadata":{}`;
/// Go's `omitempty` does not omit a struct).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {}

/// `metav1.Status`, with Go's field order and `omitempty` rules, so it serializes byte for byte as
/// the kubelet's `json.Marshal(status)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

/// `metav1.StatusDetails`; only `causes` is ever set here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// `metav1.StatusCause`: its Go field `Type` is serialized as `reason`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

pub const STATUS_SUCCESS: &str = "Success";
pub const STATUS_FAILURE: &str = "Failure";
/// `remotecommand.NonZeroExitCodeReason`.
pub const REASON_NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
/// `remotecommand.ExitCodeCauseType`.
pub const CAUSE_EXIT_CODE: &str = "ExitCode";
/// `metav1.StatusReasonInternalError`.
pub const REASON_INTERNAL_ERROR: &str = "InternalError";

impl Status {
    /// `{"metadata":{},"status":"Success"}`.
    pub fn success() -> Self {
        Self {
            status: STATUS_SUCCESS.to_owned(),
            ..Self::default()
        }
    }

    /// The status of an exec whose command exited with `code` (not 0). The message wording is
    /// the kubelet's (`exec.go`) around containerd's and CRI-O's exit error text.
    pub fn non_zero_exit(code: i32, cmd: &[String]) -> Self {
        Self {
            status: STATUS_FAILURE.to_owned(),
            message: format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            reason: REASON_NON_ZERO_EXIT_CODE.to_owned(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: CAUSE_EXIT_CODE.to_owned(),
                    message: code.to_string(),
                }],
            }),
            code: 0,
            metadata: ListMeta {},
        }
    }

    /// `apierrors.NewInternalError(err)`: code 500, reason `InternalError`.
    pub fn internal_error(err: &str) -> Self {
        Self {
            status: STATUS_FAILURE.to_owned(),
            message: format!("Internal error occurred: {err}"),
            reason: REASON_INTERNAL_ERROR.to_owned(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: String::new(),
                    message: err.to_owned(),
                }],
            }),
            code: 500,
            metadata: ListMeta {},
        }
    }

    /// Whether this is a success.
    pub fn is_success(&self) -> bool {
        self.status == STATUS_SUCCESS
    }

    /// The exit code this status reports, as client-go's v4 error decoder reads it: 0 for
    /// success, the `ExitCode` cause for `NonZeroExitCode`, `None` for anything else.
    pub fn exit_code(&self) -> Option<i32> {
        if self.is_success() {
            return Some(0);
        }
        if self.reason != REASON_NON_ZERO_EXIT_CODE {
            return None;
        }
        self.details
            .as_ref()?
            .causes
            .iter()
            .find(|c| c.reason == CAUSE_EXIT_CODE)?
            .message
            .parse()
            .ok()
    }

    /// What goes on the error stream under `protocol`: the JSON status from v4 on; before v4 the
    /// message of a failure and nothing for a success (`v1WriteStatusFunc`).
    pub fn encode(&self, protocol: Protocol) -> Option<Vec<u8>> {
        if protocol.json_status() {
            // Serializing plain strings and integers cannot fail.
            serde_json::to_vec(self).ok()
        } else if self.is_success() {
            None
        } else {
            Some(self.message.clone().into_bytes())
        }
    }
}

/// A terminal size as the client sends it: JSON `{"Width":80,"Height":24}` (client-go's
/// `TerminalSize`; Go matches the keys case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

impl TerminalSize {
    /// The JSON a client sends (client-go's field names).
    pub fn to_json(self) -> String {
        format!("{{\"Width\":{},\"Height\":{}}}", self.width, self.height)
    }
}

/// The resize stream is a stream of JSON objects in any framing; more than this many bytes
/// without a complete object is an error.
pub const MAX_RESIZE_PENDING: usize = 4096;

/// Why the resize stream was abandoned (the kubelet stops reading it at the first decode error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("resize stream: more than {MAX_RESIZE_PENDING} bytes without a complete JSON value")]
    TooLong,
    #[error("resize stream: invalid JSON: {0}")]
    Json(String),
    #[error("resize stream: not a terminal size: {0}")]
    NotASize(String),
}

/// Decodes the resize stream incrementally: bytes in, complete sizes out.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    pending: Vec<u8>,
}

impl ResizeDecoder {
    /// Adds `data` and returns every size completed by it.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<TerminalSize>, ResizeError> {
        self.pending.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut values =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<serde_json::Value>();
        let mut consumed = 0;
        loop {
            match values.next() {
                None => {
                    consumed = self.pending.len();
                    break;
                }
                Some(Ok(value)) => {
                    consumed = values.byte_offset();
                    sizes.push(terminal_size(&value)?);
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(ResizeError::Json(e.to_string())),
            }
        }
        self.pending.drain(..consumed);
        let leading_space = self
            .pending
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        self.pending.drain(..leading_space);
        if self.pending.len() > MAX_RESIZE_PENDING {
            return Err(ResizeError::TooLong);
        }
        Ok(sizes)
    }
}

fn terminal_size(value: &serde_json::Value) -> Result<TerminalSize, ResizeError> {
    let object = value
        .as_object()
        .ok_or_else(|| ResizeError::NotASize(value.to_string()))?;
    let mut size = TerminalSize {
        width: 0,
        height: 0,
    };
    for (key, v) in object {
        let field = if key.eq_ignore_ascii_case("width") {
            &mut size.width
        } else if key.eq_ignore_ascii_case("height") {
            &mut size.height
        } else {
            continue;
        };
        *field = v
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| ResizeError::NotASize(value.to_string()))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_like_the_kubelet() {
        assert_eq!(
            String::from_utf8(Status::success().encode(Protocol::V4).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let cmd = ["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        let failure = Status::non_zero_exit(3, &cmd);
        assert_eq!(
            String::from_utf8(failure.encode(Protocol::V5).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(failure.exit_code(), Some(3));
        assert_eq!(Status::success().exit_code(), Some(0));
        let internal = Status::internal_error("boom");
        assert_eq!(
            String::from_utf8(internal.encode(Protocol::V4).unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
        assert_eq!(internal.exit_code(), None);
    }

    #[test]
    fn old_protocols_write_only_failure_messages() {
        assert_eq!(Status::success().encode(Protocol::V3), None);
        assert_eq!(
            Status::internal_error("x").encode(Protocol::V1).unwrap(),
            b"Internal error occurred: x"
        );
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in [
            Protocol::V1,
            Protocol::V2,
            Protocol::V3,
            Protocol::V4,
            Protocol::V5,
        ] {
            assert_eq!(Protocol::from_name(p.name()), Some(p));
        }
        assert_eq!(Protocol::from_name("v6.channel.k8s.io"), None);
        assert!(!Protocol::V2.supports_resize() && Protocol::V3.supports_resize());
        assert!(!Protocol::V4.supports_close_signal() && Protocol::V5.supports_close_signal());
    }

    #[test]
    fn stream_types_and_channels() {
        for t in StreamType::ALL {
            assert_eq!(StreamType::from_header(t.as_str()), Some(t));
        }
        assert_eq!(StreamType::Resize.channel(), 4);
        assert_eq!(StreamType::from_header("STDIN"), None);
        let opts = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        assert_eq!(opts.expected_spdy_streams(Protocol::V4), 4);
        assert_eq!(opts.expected_spdy_streams(Protocol::V2), 3);
    }

    #[test]
    fn resize_messages_in_any_framing() {
        let mut d = ResizeDecoder::default();
        assert_eq!(
            d.push(br#"{"Width":80,"Height":24}"#).unwrap(),
            vec![TerminalSize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(d.push(br#"{"width":100,"#).unwrap(), vec![]);
        assert_eq!(
            d.push(b"\"HEIGHT\":50}\n{\"Width\":1,\"Height\":2} ")
                .unwrap(),
            vec![
                TerminalSize {
                    width: 100,
                    height: 50
                },
                TerminalSize {
                    width: 1,
                    height: 2
                }
            ]
        );
        assert!(d.pending.is_empty());
    }

    #[test]
    fn hostile_resize_messages_are_rejected() {
        assert!(matches!(
            ResizeDecoder::default().push(br#"{"Width":70000,"Height":1}"#),
            Err(ResizeError::NotASize(_))
        ));
        assert!(matches!(
            ResizeDecoder::default().push(br#"{"Width":-1}"#),
            Err(ResizeError::NotASize(_))
        ));
        assert!(matches!(
            ResizeDecoder::default().push(b"[1,2]"),
            Err(ResizeError::NotASize(_))
        ));
        assert!(matches!(
            ResizeDecoder::default().push(b"}"),
            Err(ResizeError::Json(_))
        ));
        let long = format!(r#"{{"Width":1,"x":"{}"#, "a".repeat(MAX_RESIZE_PENDING));
        assert_eq!(
            ResizeDecoder::default().push(long.as_bytes()),
            Err(ResizeError::TooLong)
        );
    }
}
