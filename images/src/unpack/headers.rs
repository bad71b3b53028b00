//! A bound, checked while reading, on what the `tar` crate keeps in memory between entries.
//!
//! Finding the next entry, the `tar` crate reads a PAX extended header (`x`), a GNU long name
//! (`L`) or long link (`K`) whole into a `Vec`, and the extension blocks of a GNU sparse map into
//! a list: all as large as the archive says. A 4 MB gzip layer holding a multi-GiB PAX header
//! would have the daemon allocate gigabytes. So every read the crate makes while looking for the
//! next entry (inside `Entries::next`) counts against [`MAX_HEADER_BYTES`], and the read that
//! would pass it fails, before the crate can buffer more.
//!
//! Entry data is not read inside `Entries::next` as long as the caller has read each entry to
//! its end first (the crate skips unread data there): [`super::layer::Unpacker`] drains every
//! entry before asking for the next.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Most bytes the `tar` crate may read to find one entry: its header, GNU long name and link,
/// PAX extended header and GNU sparse extension blocks together.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The shared switch between the unpacker (which arms it around `Entries::next`) and the reader
/// beneath the `tar` crate.
#[derive(Debug, Clone, Default)]
pub(super) struct HeaderBudget(Rc<State>);

#[derive(Debug, Default)]
struct State {
    armed: Cell<bool>,
    used: Cell<u64>,
    exceeded: Cell<bool>,
}

impl HeaderBudget {
    /// Starts counting from zero.
    pub(super) fn arm(&self) {
        self.0.used.set(0);
        self.0.armed.set(true);
    }

    /// Stops counting (entry data is read unbounded by this budget).
    pub(super) fn disarm(&self) {
        self.0.armed.set(false);
    }

    /// Whether a read failed for passing [`MAX_HEADER_BYTES`].
    pub(super) fn exceeded(&self) -> bool {
        self.0.exceeded.get()
    }
}

/// The reader the `tar` crate reads through: counts against the budget while it is armed.
pub(super) struct Bounded<R> {
    pub(super) inner: R,
    pub(super) budget: HeaderBudget,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &self.budget.0;
        if !s.armed.get() {
            return self.inner.read(buf);
        }
        let left = MAX_HEADER_BYTES.saturating_sub(s.used.get());
        if left == 0 && !buf.is_empty() {
            s.exceeded.set(true);
            return Err(io::Error::other("tar header larger than the limit"));
        }
        let len = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        s.used.set(s.used.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_only_while_armed() {
        let budget = HeaderBudget::default();
        let mut r = Bounded {
            inner: io::repeat(7),
            budget: budget.clone(),
        };
        let mut big = vec![0; 3 << 20];
        assert_eq!(r.read(&mut big).unwrap(), 3 << 20);
        budget.arm();
        let mut got = 0;
        let err = loop {
            match r.read(&mut big) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(got as u64, MAX_HEADER_BYTES);
        assert!(err.to_string().contains("limit"));
        assert!(budget.exceeded());
        budget.disarm();
        assert_eq!(r.read(&mut big).unwrap(), 3 << 20);
        budget.arm();
        assert_eq!(r.read(&mut big[..512]).unwrap(), 512);
    }
}
