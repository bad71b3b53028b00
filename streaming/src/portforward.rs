//! The port-forward protocol apart from the transport.
//!
//! WebSocket (`kubelet/pkg/cri/streaming/portforward/websocket.go`): the ports come from the
//! request's `port` query parameters (repeated or comma-separated); port `i` gets channel `2i`
//! for data (both ways) and `2i+1` for errors (server → client), and the server's first message
//! on each of the two is the port as a little-endian `u16`. One WebSocket carries one connection
//! per port.
//!
//! SPDY (`httpstream.go`): subprotocol `portforward.k8s.io`; the client opens a pair of streams
//! per connection, headers `streamtype` (`data` or `error`), `port` and `requestid` (the pair's
//! key). [`PairTable`] pairs them up.
//!
//! SPDY through a WebSocket (KEP-4006, what kubectl 1.30+ and `crictl port-forward --transport
//! websocket` ask for): WebSocket subprotocol `SPDY/3.1+portforward.k8s.io`, and the binary
//! messages carry the bytes of the same SPDY session
//! ([`websocket::tunnel`](crate::websocket::tunnel)).
//!
//! Errors go on the error stream as plain text: `error forwarding port <port> to pod <sandbox>,
//! uid : <error>`.

use std::collections::HashMap;

use crate::backend::BoxStream;

/// The SPDY port-forward subprotocol (`X-Stream-Protocol-Version`).
pub const PROTOCOL_V1: &str = "portforward.k8s.io";
/// The WebSocket subprotocol tunnelling a [`PROTOCOL_V1`] SPDY session: client-go's
/// `WebsocketsSPDYTunnelingPrefix` (`SPDY/3.1+`) and the SPDY subprotocol.
pub const TUNNEL_PROTOCOL_V1: &str = "SPDY/3.1+portforward.k8s.io";
/// SPDY header and WebSocket query parameter naming the port (`api.PortHeader`).
pub const PORT_HEADER: &str = "port";
/// SPDY header pairing a connection's data and error streams (`api.PortForwardRequestIDHeader`,
/// sent as `requestID`; SPDY/3 lowercases header names).
pub const REQUEST_ID_HEADER: &str = "requestid";
/// Most ports one request may forward. With 32, WebSocket channels stay below 64, so even the
/// base64 framing's `'0'+channel` prefix is printable ASCII.
pub const MAX_PORTS: usize = 32;
/// Most stream pairs an SPDY connection may have half-open at once.
pub const MAX_PENDING_PAIRS: usize = 256;

/// Why a port list or stream header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("query parameter \"port\" is required")]
    Missing,
    #[error("query parameter \"port\" cannot be empty")]
    Empty,
    #[error("unable to parse {0:?} as a port")]
    Invalid(String),
    #[error("port {0:?} must be > 0")]
    Zero(String),
    #[error("at most {MAX_PORTS} ports can be forwarded at once")]
    TooMany,
    #[error("\"port\" header is required")]
    MissingPortHeader,
    #[error("port {0} was not requested")]
    NotRequested(u16),
    #[error("\"streamtype\" header is required")]
    MissingStreamType,
    #[error("invalid stream type {0:?}")]
    InvalidStreamType(String),
    #[error("{0} stream already assigned")]
    Duplicate(&'static str),
    #[error("too many unpaired streams")]
    TooManyPending,
}

/// Parses the ports of a WebSocket port-forward request from its query string: every `port`
/// parameter, each a comma-separated list of ports in 1..=65535 (`NewV4Options`).
pub fn ports_from_query(query: Option<&str>) -> Result<Vec<u16>, PortError> {
    let mut ports = Vec::new();
    let mut seen_param = false;
    for (key, value) in query_pairs(query.unwrap_or("")) {
        if key != PORT_HEADER {
            continue;
        }
        seen_param = true;
        if value.is_empty() {
            return Err(PortError::Empty);
        }
        for p in value.split(',') {
            ports.push(parse_port(p)?);
            if ports.len() > MAX_PORTS {
                return Err(PortError::TooMany);
            }
        }
    }
    if !seen_param {
        return Err(PortError::Missing);
    }
    Ok(ports)
}

/// Parses one port, as Go's `strconv.ParseUint(p, 10, 16)` and the `> 0` check do.
pub fn parse_port(p: &str) -> Result<u16, PortError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::Invalid(p.to_owned()));
    }
    match p.parse::<u16>() {
        Ok(0) => Err(PortError::Zero(p.to_owned())),
        Ok(port) => Ok(port),
        Err(_) => Err(PortError::Invalid(p.to_owned())),
    }
}

/// The first message on both channels of a WebSocket-forwarded port.
pub fn port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

/// Splits a query string into decoded key/value pairs (`+` is a space, `%XX` a byte; pairs that
/// do not decode as UTF-8 are skipped).
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The two stream kinds of a forwarded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Data,
    Error,
}

impl StreamKind {
    /// Parses a `streamtype` header value.
    pub fn from_header(value: &str) -> Result<Self, PortError> {
        match value {
            "data" => Ok(StreamKind::Data),
            "error" => Ok(StreamKind::Error),
            "" => Err(PortError::MissingStreamType),
            other => Err(PortError::InvalidStreamType(other.to_owned())),
        }
    }
}

/// A complete SPDY stream pair: forward `data` to `port`, report failures on `error`.
pub struct StreamPair {
    pub request_id: String,
    pub port: u16,
    pub data: BoxStream,
    pub error: BoxStream,
}

#[derive(Default)]
struct HalfPair {
    port: u16,
    data: Option<BoxStream>,
    error: Option<BoxStream>,
}

/// Pairs the data and error streams an SPDY client opens for each forwarded connection, keyed by
/// `requestid`. The SPDY transport feeds every accepted stream in and forwards each completed
/// pair; it also drops pairs still incomplete after the stream creation timeout
/// ([`remove`](Self::remove)).
#[derive(Default)]
pub struct PairTable {
    pending: HashMap<String, HalfPair>,
}

impl PairTable {
    /// Adds one stream, given its header values. `allowed` is the CRI request's port list
    /// (empty: any port). Returns the pair once both halves are in.
    pub fn add(
        &mut self,
        stream_type: &str,
        port: &str,
        request_id: &str,
        allowed: &[u16],
        stream: BoxStream,
    ) -> Result<Option<StreamPair>, PortError> {
        if port.is_empty() {
            return Err(PortError::MissingPortHeader);
        }
        let port = parse_port(port)?;
        if !allowed.is_empty() && !allowed.contains(&port) {
            return Err(PortError::NotRequested(port));
        }
        let kind = StreamKind::from_header(stream_type)?;
        if !self.pending.contains_key(request_id) && self.pending.len() >= MAX_PENDING_PAIRS {
            return Err(PortError::TooManyPending);
        }
        let half = self.pending.entry(request_id.to_owned()).or_default();
        half.port = port;
        let slot = match kind {
            StreamKind::Data => &mut half.data,
            StreamKind::Error => &mut half.error,
        };
        if slot.is_some() {
            return Err(PortError::Duplicate(match kind {
                StreamKind::Data => "data",
                StreamKind::Error => "error",
            }));
        }
        *slot = Some(stream);
        if half.data.is_none() || half.error.is_none() {
            return Ok(None);
        }
        let Some(HalfPair {
            port,
            data: Some(data),
            error: Some(error),
        }) = self.pending.remove(request_id)
        else {
            return Ok(None);
        };
        Ok(Some(StreamPair {
            request_id: request_id.to_owned(),
            port,
            data,
            error,
        }))
    }

    /// Drops a half-open pair (its streams are closed by dropping them).
    pub fn remove(&mut self, request_id: &str) {
        self.pending.remove(request_id);
    }

    /// Half-open pairs.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_the_query_string() {
        assert_eq!(ports_from_query(Some("port=80")), Ok(vec![80]));
        assert_eq!(
            ports_from_query(Some("port=80&x=1&port=8080%2C9090")),
            Ok(vec![80, 8080, 9090])
        );
        assert_eq!(ports_from_query(Some("port=1,2,3")), Ok(vec![1, 2, 3]));
        assert_eq!(ports_from_query(None), Err(PortError::Missing));
        assert_eq!(ports_from_query(Some("port=")), Err(PortError::Empty));
        assert_eq!(
            ports_from_query(Some("port=0")),
            Err(PortError::Zero("0".into()))
        );
        assert_eq!(
            ports_from_query(Some("port=65536")),
            Err(PortError::Invalid("65536".into()))
        );
        assert_eq!(
            ports_from_query(Some("port=-1")),
            Err(PortError::Invalid("-1".into()))
        );
        assert_eq!(
            ports_from_query(Some("port=1,")),
            Err(PortError::Invalid("".into()))
        );
        let many = vec!["1"; MAX_PORTS + 1].join(",");
        assert_eq!(
            ports_from_query(Some(&format!("port={many}"))),
            Err(PortError::TooMany)
        );
    }

    #[test]
    fn port_prefix_is_little_endian() {
        assert_eq!(port_prefix(8080), [0x90, 0x1f]);
    }

    fn stream() -> BoxStream {
        Box::new(tokio::io::duplex(16).0)
    }

    #[test]
    fn spdy_streams_pair_by_request_id() {
        let mut table = PairTable::default();
        assert!(
            table
                .add("error", "80", "1", &[], stream())
                .unwrap()
                .is_none()
        );
        assert!(
            table
                .add("data", "81", "2", &[], stream())
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            table.add("error", "80", "1", &[], stream()),
            Err(PortError::Duplicate("error"))
        ));
        let pair = table
            .add("data", "80", "1", &[], stream())
            .unwrap()
            .unwrap();
        assert_eq!((pair.request_id.as_str(), pair.port), ("1", 80));
        assert_eq!(table.pending(), 1);
        assert!(matches!(
            table.add("bogus", "80", "3", &[], stream()),
            Err(PortError::InvalidStreamType(_))
        ));
        assert!(matches!(
            table.add("data", "", "3", &[], stream()),
            Err(PortError::MissingPortHeader)
        ));
        assert!(matches!(
            table.add("data", "22", "3", &[80], stream()),
            Err(PortError::NotRequested(22))
        ));
        table.remove("2");
        assert_eq!(table.pending(), 0);
    }
}
