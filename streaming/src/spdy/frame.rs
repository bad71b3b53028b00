//! SPDY/3 frames: their in-memory form, a streaming decoder and an encoder.
//!
//! Every frame starts with 8 bytes. A DATA frame: a 0 bit, the 31-bit stream id, 8 flag bits and
//! a 24-bit length. A control frame: a 1 bit, the 15-bit version (3), the 16-bit type, 8 flag bits
//! and a 24-bit length. The decoder refuses lengths above [`Limits::max_frame_len`] as soon as the
//! 8 bytes are in, before waiting for (or buffering) the payload, and ignores control frame types
//! it does not know, as the specification requires.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tracing::debug;

use super::Limits;
use super::headers::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// The largest payload the 24-bit length field can describe.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// The fixed header in front of every frame's payload.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest stream id (31 bits).
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;
/// A SETTINGS frame may carry at most this many entries (SPDY/3 defines eight ids).
pub const MAX_SETTINGS: usize = 64;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Malformed frames, ours or the peer's. Any of these from the peer ends the session.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("SPDY frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("SPDY control frame has version {0}, only 3 is supported")]
    UnsupportedVersion(u16),
    #[error("SPDY {kind} frame has a bad length {len}")]
    BadLength { kind: &'static str, len: usize },
    #[error("SPDY {0} frame for stream 0")]
    ZeroStreamId(&'static str),
    #[error("SPDY stream id {0} is out of range")]
    BadStreamId(u32),
    #[error("SPDY SETTINGS frame has {0} entries, more than {MAX_SETTINGS}")]
    TooManySettings(usize),
    #[error("SPDY header block: {0}")]
    Header(#[from] HeaderError),
}

/// The status in a RST_STREAM frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RstStatus(pub u32);

impl RstStatus {
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INVALID_STREAM: Self = Self(2);
    pub const REFUSED_STREAM: Self = Self(3);
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    pub const CANCEL: Self = Self(5);
    pub const INTERNAL_ERROR: Self = Self(6);
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    pub const STREAM_IN_USE: Self = Self(8);
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    pub const INVALID_CREDENTIALS: Self = Self(10);
    pub const FRAME_TOO_LARGE: Self = Self(11);
}

impl std::fmt::Display for RstStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "PROTOCOL_ERROR",
            2 => "INVALID_STREAM",
            3 => "REFUSED_STREAM",
            4 => "UNSUPPORTED_VERSION",
            5 => "CANCEL",
            6 => "INTERNAL_ERROR",
            7 => "FLOW_CONTROL_ERROR",
            8 => "STREAM_IN_USE",
            9 => "STREAM_ALREADY_CLOSED",
            10 => "INVALID_CREDENTIALS",
            11 => "FRAME_TOO_LARGE",
            other => return write!(f, "status {other}"),
        };
        f.write_str(name)
    }
}

/// The status in a GOAWAY frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    pub const OK: Self = Self(0);
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INTERNAL_ERROR: Self = Self(2);
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    pub stream_id: u32,
    pub fin: bool,
    pub data: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynStream {
    pub stream_id: u32,
    pub associated_to: u32,
    /// 0 (highest) to 7.
    pub priority: u8,
    pub slot: u8,
    pub fin: bool,
    pub unidirectional: bool,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynReply {
    pub stream_id: u32,
    pub fin: bool,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RstStream {
    pub stream_id: u32,
    pub status: RstStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24 bits.
    pub id: u32,
    pub value: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub clear: bool,
    pub entries: Vec<Setting>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ping {
    pub id: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    pub last_good_stream_id: u32,
    pub status: GoAwayStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadersFrame {
    pub stream_id: u32,
    pub fin: bool,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowUpdate {
    pub stream_id: u32,
    pub delta: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Data(Data),
    SynStream(SynStream),
    SynReply(SynReply),
    RstStream(RstStream),
    Settings(Settings),
    Ping(Ping),
    GoAway(GoAway),
    Headers(HeadersFrame),
    WindowUpdate(WindowUpdate),
}

impl Frame {
    /// The frame type's name in the specification.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Data(_) => "DATA",
            Frame::SynStream(_) => "SYN_STREAM",
            Frame::SynReply(_) => "SYN_REPLY",
            Frame::RstStream(_) => "RST_STREAM",
            Frame::Settings(_) => "SETTINGS",
            Frame::Ping(_) => "PING",
            Frame::GoAway(_) => "GOAWAY",
            Frame::Headers(_) => "HEADERS",
            Frame::WindowUpdate(_) => "WINDOW_UPDATE",
        }
    }

    /// The stream the frame is about, if any.
    pub fn stream_id(&self) -> Option<u32> {
        match self {
            Frame::Data(Data { stream_id, .. })
            | Frame::SynStream(SynStream { stream_id, .. })
            | Frame::SynReply(SynReply { stream_id, .. })
            | Frame::RstStream(RstStream { stream_id, .. })
            | Frame::Headers(HeadersFrame { stream_id, .. })
            | Frame::WindowUpdate(WindowUpdate { stream_id, .. }) => Some(*stream_id),
            Frame::Settings(_) | Frame::Ping(_) | Frame::GoAway(_) => None,
        }
    }
}

/// Turns the peer's bytes into frames; holds the inbound header decompression context, so one
/// decoder serves one connection for its whole life.
pub struct FrameDecoder {
    headers: HeaderDecoder,
    max_frame_len: usize,
}

impl FrameDecoder {
    pub fn new(limits: &Limits) -> Self {
        Self {
            headers: HeaderDecoder::new(limits.max_header_block, limits.max_headers),
            max_frame_len: limits.max_frame_len.min(MAX_PAYLOAD),
        }
    }

    /// Takes the next whole frame off the front of `buf`; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(head) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
                return Ok(None);
            };
            let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let flags = head[4];
            let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
            if len > self.max_frame_len {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame_len,
                });
            }
            let control = word & 0x8000_0000 != 0;
            let version = (word >> 16 & 0x7fff) as u16;
            if control && version != VERSION {
                return Err(FrameError::UnsupportedVersion(version));
            }
            if buf.len() < FRAME_HEADER_LEN + len {
                return Ok(None);
            }
            buf.advance(FRAME_HEADER_LEN);
            let payload = buf.split_to(len).freeze();
            if !control {
                let stream_id = word;
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId("DATA"));
                }
                return Ok(Some(Frame::Data(Data {
                    stream_id,
                    fin: flags & FLAG_FIN != 0,
                    data: payload,
                })));
            }
            let kind = (word & 0xffff) as u16;
            if let Some(frame) = self.control(kind, flags, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Option<Frame>, FrameError> {
        let len = p.len();
        let fin = flags & FLAG_FIN != 0;
        let frame = match kind {
            TYPE_SYN_STREAM => {
                check_len("SYN_STREAM", len, len >= 10)?;
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                let associated_to = p.get_u32() & MAX_STREAM_ID;
                let priority = p.get_u8() >> 5;
                let slot = p.get_u8();
                // Always inflate, even for a frame we are about to refuse: the zlib stream
                // continues across frames.
                let headers = self.headers.decode(&p)?;
                nonzero("SYN_STREAM", stream_id)?;
                Frame::SynStream(SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                })
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let name = if kind == TYPE_SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                check_len(name, len, len >= 4)?;
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                let headers = self.headers.decode(&p)?;
                nonzero(name, stream_id)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply(SynReply {
                        stream_id,
                        fin,
                        headers,
                    })
                } else {
                    Frame::Headers(HeadersFrame {
                        stream_id,
                        fin,
                        headers,
                    })
                }
            }
            TYPE_RST_STREAM => {
                check_len("RST_STREAM", len, len == 8)?;
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                nonzero("RST_STREAM", stream_id)?;
                Frame::RstStream(RstStream {
                    stream_id,
                    status: RstStatus(p.get_u32()),
                })
            }
            TYPE_SETTINGS => {
                check_len("SETTINGS", len, len >= 4)?;
                let count = p.get_u32() as usize;
                if count > MAX_SETTINGS {
                    return Err(FrameError::TooManySettings(count));
                }
                check_len("SETTINGS", len, len == 4 + 8 * count)?;
                let entries = (0..count)
                    .map(|_| {
                        let word = p.get_u32();
                        Setting {
                            flags: (word >> 24) as u8,
                            id: word & 0xff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings(Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                })
            }
            TYPE_PING => {
                check_len("PING", len, len == 4)?;
                Frame::Ping(Ping { id: p.get_u32() })
            }
            TYPE_GOAWAY => {
                check_len("GOAWAY", len, len == 8)?;
                let last_good_stream_id = p.get_u32() & MAX_STREAM_ID;
                Frame::GoAway(GoAway {
                    last_good_stream_id,
                    status: GoAwayStatus(p.get_u32()),
                })
            }
            TYPE_WINDOW_UPDATE => {
                check_len("WINDOW_UPDATE", len, len == 8)?;
                let stream_id = p.get_u32() & MAX_STREAM_ID;
                Frame::WindowUpdate(WindowUpdate {
                    stream_id,
                    delta: p.get_u32() & 0x7fff_ffff,
                })
            }
            other => {
                debug!(
                    frame_type = other,
                    len, "ignoring unknown SPDY control frame"
                );
                return Ok(None);
            }
        };
        Ok(Some(frame))
    }
}

fn check_len(kind: &'static str, len: usize, ok: bool) -> Result<(), FrameError> {
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadLength { kind, len })
    }
}

fn nonzero(kind: &'static str, stream_id: u32) -> Result<(), FrameError> {
    if stream_id == 0 {
        Err(FrameError::ZeroStreamId(kind))
    } else {
        Ok(())
    }
}

fn valid_id(stream_id: u32) -> Result<u32, FrameError> {
    if stream_id == 0 || stream_id > MAX_STREAM_ID {
        return Err(FrameError::BadStreamId(stream_id));
    }
    Ok(stream_id)
}

/// Turns frames into bytes; holds the outbound header compression context. A failure while
/// encoding a frame with headers leaves that context ahead of the peer's, so the session must end.
pub struct FrameEncoder {
    headers: HeaderEncoder,
    scratch: Vec<u8>,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameEncoder {
    pub fn new() -> Self {
        Self {
            headers: HeaderEncoder::new(),
            scratch: Vec::new(),
        }
    }

    /// Appends `frame` to `dst`.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data(d) => {
                let len = payload_len(d.data.len())?;
                dst.reserve(FRAME_HEADER_LEN + d.data.len());
                dst.put_u32(valid_id(d.stream_id)?);
                dst.put_u32(u32::from(flag(d.fin, FLAG_FIN)) << 24 | len);
                dst.put_slice(&d.data);
            }
            Frame::SynStream(s) => {
                let id = valid_id(s.stream_id)?;
                let block = self.compress(&s.headers)?;
                let flags = flag(s.fin, FLAG_FIN) | flag(s.unidirectional, FLAG_UNIDIRECTIONAL);
                control(dst, TYPE_SYN_STREAM, flags, 10 + block.len())?;
                dst.put_u32(id);
                dst.put_u32(s.associated_to & MAX_STREAM_ID);
                dst.put_u8((s.priority & 0x7) << 5);
                dst.put_u8(s.slot);
                dst.put_slice(block);
            }
            Frame::SynReply(SynReply {
                stream_id,
                fin,
                headers,
            })
            | Frame::Headers(HeadersFrame {
                stream_id,
                fin,
                headers,
            }) => {
                let id = valid_id(*stream_id)?;
                let kind = if matches!(frame, Frame::SynReply(_)) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let block = self.compress(headers)?;
                control(dst, kind, flag(*fin, FLAG_FIN), 4 + block.len())?;
                dst.put_u32(id);
                dst.put_slice(block);
            }
            Frame::RstStream(r) => {
                control(dst, TYPE_RST_STREAM, 0, 8)?;
                dst.put_u32(valid_id(r.stream_id)?);
                dst.put_u32(r.status.0);
            }
            Frame::Settings(s) => {
                if s.entries.len() > MAX_SETTINGS {
                    return Err(FrameError::TooManySettings(s.entries.len()));
                }
                control(
                    dst,
                    TYPE_SETTINGS,
                    flag(s.clear, FLAG_CLEAR_SETTINGS),
                    4 + 8 * s.entries.len(),
                )?;
                dst.put_u32(s.entries.len() as u32);
                for e in &s.entries {
                    dst.put_u32(u32::from(e.flags) << 24 | (e.id & 0xff_ffff));
                    dst.put_u32(e.value);
                }
            }
            Frame::Ping(p) => {
                control(dst, TYPE_PING, 0, 4)?;
                dst.put_u32(p.id);
            }
            Frame::GoAway(g) => {
                control(dst, TYPE_GOAWAY, 0, 8)?;
                dst.put_u32(g.last_good_stream_id & MAX_STREAM_ID);
                dst.put_u32(g.status.0);
            }
            Frame::WindowUpdate(w) => {
                control(dst, TYPE_WINDOW_UPDATE, 0, 8)?;
                dst.put_u32(w.stream_id & MAX_STREAM_ID);
                dst.put_u32(w.delta & 0x7fff_ffff);
            }
        }
        Ok(())
    }

    fn compress(&mut self, headers: &Headers) -> Result<&[u8], FrameError> {
        self.scratch.clear();
        self.headers.encode(headers, &mut self.scratch)?;
        Ok(&self.scratch)
    }
}

fn flag(set: bool, bit: u8) -> u8 {
    if set { bit } else { 0 }
}

fn payload_len(len: usize) -> Result<u32, FrameError> {
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_PAYLOAD,
        });
    }
    Ok(len as u32)
}

fn control(dst: &mut BytesMut, kind: u16, flags: u8, len: usize) -> Result<(), FrameError> {
    let len = payload_len(len)?;
    dst.reserve(FRAME_HEADER_LEN + len as usize);
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(kind);
    dst.put_u32(u32::from(flags) << 24 | len);
    Ok(())
}

#[cfg(test)]
mod tests;
