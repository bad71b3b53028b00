//! Header blocks: the name/value list in SYN_STREAM, SYN_REPLY and HEADERS frames, and its zlib
//! compression with the SPDY/3 dictionary.
//!
//! A block is a 32-bit count, then for each name a 32-bit length and the (lowercase) name, a
//! 32-bit length and the value; several values of one name are joined with NUL. Each direction
//! of a session has one zlib stream: every block is compressed with a sync flush (as Go's
//! `zlib.Writer.Flush` does), and the receiver keeps one inflater across all frames. A header
//! block that fails to decode therefore ends the session: the two contexts are out of step.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Adler-32 of [`DICTIONARY`]: the DICTID a peer's zlib header must carry.
pub(crate) const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1), byte for byte as in
/// golang.org/x/net/spdy and moby/spdystream. The array length is checked by the compiler and
/// its Adler-32 by a test.
#[rustfmt::skip]
pub(crate) const DICTIONARY: &[u8; 1423] = b"\
\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\0\0\0\x05trace\
\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\0\0\0\x0faccept-language\
\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\0\0\0\x0dauthorization\
\0\0\0\x0dcache-control\0\0\0\x0aconnection\0\0\0\x0ccontent-base\
\0\0\0\x10content-encoding\0\0\0\x10content-language\0\0\0\x0econtent-length\
\0\0\0\x10content-location\0\0\0\x0bcontent-md5\0\0\0\x0dcontent-range\
\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\0\0\0\x06expect\0\0\0\x07expires\
\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\0\0\0\x11if-modified-since\
\0\0\0\x0dif-none-match\0\0\0\x08if-range\0\0\0\x13if-unmodified-since\
\0\0\0\x0dlast-modified\0\0\0\x08location\0\0\0\x0cmax-forwards\0\0\0\x06pragma\
\0\0\0\x12proxy-authenticate\0\0\0\x13proxy-authorization\0\0\0\x05range\0\0\0\x07referer\
\0\0\0\x0bretry-after\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\
\0\0\0\x11transfer-encoding\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\
\0\0\0\x03via\0\0\0\x07warning\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\
\0\0\0\x06status\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\
\0\0\0\x06public\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin\
100101201202205206300302303304305306307402405\
406407408409410411412413414415416417502504505\
203 Non-Authoritative Information\
204 No Content\
301 Moved Permanently\
400 Bad Request\
401 Unauthorized\
403 Forbidden\
404 Not Found\
500 Internal Server Error\
501 Not Implemented\
503 Service Unavailable\
Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
chunked,text/html,image/png,image/jpg,image/gif,\
application/xml,application/xhtml+xml,\
text/plain,text/javascript,\
publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// Errors in a header block, ours or the peer's.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header block decompresses to more than {max} bytes")]
    TooLarge { max: usize },
    #[error("header block has {count} names, more than the limit of {max}")]
    TooMany { count: u64, max: usize },
    #[error("header block is truncated")]
    Truncated,
    #[error("header block has {0} bytes after its last header")]
    Trailing(usize),
    #[error("header block has an empty name")]
    EmptyName,
    #[error("header name {0:?} is not lowercase")]
    NotLowercase(String),
    #[error("header name {0:?} appears twice")]
    Duplicate(String),
    #[error("header name or value is not UTF-8")]
    NotUtf8,
    #[error("header zlib stream needs dictionary {0:#010x}, not the SPDY/3 one")]
    WrongDictionary(u32),
    #[error("header zlib stream: {0}")]
    Zlib(String),
}

/// The headers of a stream: lowercase names, each with one or more values, in the order added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<String>)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value under `name` (lowercased), after any values it already has.
    pub fn add(&mut self, name: &str, value: impl Into<String>) {
        let name = name.to_ascii_lowercase();
        let value = value.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => self.entries.push((name, vec![value])),
        }
    }

    /// [`Headers::add`] for building: `Headers::new().with("streamtype", "error")`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.add(name, value);
        self
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).first().map(String::as_str)
    }

    /// Every value of `name` (any case).
    pub fn get_all(&self, name: &str) -> &[String] {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, values)| values.as_slice())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed block.
    pub(crate) fn to_block(&self) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::with_capacity(64);
        put_len(&mut out, self.entries.len())?;
        for (name, values) in &self.entries {
            if name.is_empty() {
                return Err(HeaderError::EmptyName);
            }
            put_len(&mut out, name.len())?;
            out.extend_from_slice(name.as_bytes());
            let joined = values.join("\0");
            put_len(&mut out, joined.len())?;
            out.extend_from_slice(joined.as_bytes());
        }
        Ok(out)
    }

    /// Parses an uncompressed block, which must end where its last header ends.
    pub(crate) fn from_block(block: &[u8], max_headers: usize) -> Result<Self, HeaderError> {
        let mut rest = block;
        let count = take_u32(&mut rest)?;
        if count as usize > max_headers {
            return Err(HeaderError::TooMany {
                count: count.into(),
                max: max_headers,
            });
        }
        // Each name takes at least 8 bytes: a count the block cannot hold is refused before
        // anything is allocated for it.
        if u64::from(count) * 8 > rest.len() as u64 {
            return Err(HeaderError::Truncated);
        }
        let mut headers = Headers {
            entries: Vec::with_capacity(count as usize),
        };
        for _ in 0..count {
            let name = take_str(&mut rest)?;
            if name.is_empty() {
                return Err(HeaderError::EmptyName);
            }
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(HeaderError::NotLowercase(name.to_owned()));
            }
            if headers.entries.iter().any(|(n, _)| n == name) {
                return Err(HeaderError::Duplicate(name.to_owned()));
            }
            let value = take_str(&mut rest)?;
            let values = value.split('\0').map(str::to_owned).collect();
            headers.entries.push((name.to_owned(), values));
        }
        if !rest.is_empty() {
            return Err(HeaderError::Trailing(rest.len()));
        }
        Ok(headers)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), HeaderError> {
    let len = u32::try_from(len).map_err(|_| HeaderError::TooLarge {
        max: u32::MAX as usize,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HeaderError> {
    let (word, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*word))
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Result<&'a str, HeaderError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(HeaderError::Truncated);
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(bytes).map_err(|_| HeaderError::NotUtf8)
}

/// Compresses our header blocks: one zlib stream for the session's outbound direction.
pub(crate) struct HeaderEncoder {
    zlib: Compress,
    dictionary_set: bool,
}

impl HeaderEncoder {
    pub(crate) fn new() -> Self {
        // Go's framer uses zlib.BestCompression; header blocks are tiny, so the cost is nil.
        Self {
            zlib: Compress::new(Compression::best(), true),
            dictionary_set: false,
        }
    }

    /// Appends the compressed `headers`, ended by a sync flush, to `out`.
    pub(crate) fn encode(
        &mut self,
        headers: &Headers,
        out: &mut Vec<u8>,
    ) -> Result<(), HeaderError> {
        let block = headers.to_block()?;
        if !self.dictionary_set {
            self.zlib
                .set_dictionary(DICTIONARY)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            self.dictionary_set = true;
        }
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(block.len() / 2 + 64);
            }
            let (in_before, out_before) = (self.zlib.total_in(), self.zlib.total_out());
            self.zlib
                .compress_vec(&block[consumed..], out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            let used = (self.zlib.total_in() - in_before) as usize;
            consumed += used;
            // With input used up and room left over, the flush is complete.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if used == 0 && self.zlib.total_out() == out_before && out.len() < out.capacity() {
                return Err(HeaderError::Zlib("deflate made no progress".into()));
            }
        }
    }
}

/// Decompresses the peer's header blocks: one zlib stream for the inbound direction, with a cap
/// on every block's decompressed size so a small frame cannot expand into a large allocation.
pub(crate) struct HeaderDecoder {
    zlib: Decompress,
    max_block: usize,
    max_headers: usize,
}

impl HeaderDecoder {
    pub(crate) fn new(max_block: usize, max_headers: usize) -> Self {
        Self {
            zlib: Decompress::new(true),
            max_block,
            max_headers,
        }
    }

    pub(crate) fn decode(&mut self, compressed: &[u8]) -> Result<Headers, HeaderError> {
        if compressed.is_empty() {
            // No block at all (Go always sends one); nothing enters the zlib stream.
            return Ok(Headers::new());
        }
        let block = self.inflate(compressed)?;
        Headers::from_block(&block, self.max_headers)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        // One byte beyond the cap is how we learn the block is too large.
        let limit = self.max_block.saturating_add(1);
        let mut out = vec![0u8; input.len().saturating_mul(4).clamp(64, limit)];
        let (mut consumed, mut produced) = (0, 0);
        loop {
            if produced == out.len() {
                if out.len() >= limit {
                    return Err(HeaderError::TooLarge {
                        max: self.max_block,
                    });
                }
                out.resize(out.len().saturating_mul(2).min(limit), 0);
            }
            let (in_before, out_before) = (self.zlib.total_in(), self.zlib.total_out());
            let result = self.zlib.decompress(
                &input[consumed..],
                &mut out[produced..],
                FlushDecompress::Sync,
            );
            let used = (self.zlib.total_in() - in_before) as usize;
            let made = (self.zlib.total_out() - out_before) as usize;
            consumed += used;
            produced += made;
            match result {
                Ok(Status::StreamEnd) if consumed < input.len() => {
                    return Err(HeaderError::Zlib("zlib stream ended inside a frame".into()));
                }
                Ok(Status::StreamEnd) => break,
                Ok(_) if consumed == input.len() && produced < out.len() => break,
                Ok(_) if used == 0 && made == 0 && produced < out.len() => {
                    return Err(HeaderError::Zlib("inflate made no progress".into()));
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(DICTIONARY_ID) => {
                        self.zlib
                            .set_dictionary(DICTIONARY)
                            .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    }
                    Some(other) => return Err(HeaderError::WrongDictionary(other)),
                    None => return Err(HeaderError::Zlib(e.to_string())),
                },
            }
        }
        if produced > self.max_block {
            return Err(HeaderError::TooLarge {
                max: self.max_block,
            });
        }
        out.truncate(produced);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
