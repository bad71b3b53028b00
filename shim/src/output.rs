//! Non-blocking reads from container pipes and ptys.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use corral_shim::crilog::{READ_SIZE, Stream};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

use crate::server::Error;

/// What one read gave.
pub enum Chunk {
    Data(Vec<u8>),
    /// Nothing to read right now.
    Again,
    /// The writing side is closed (for a pty: the replica side is gone, `EIO`).
    Eof,
}

pub fn set_cloexec_nonblock(fd: &OwnedFd) -> Result<(), Error> {
    let raw = fd.as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL).map_err(|e| Error::sys("fcntl F_GETFL", e))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(raw, FcntlArg::F_SETFL(flags)).map_err(|e| Error::sys("fcntl F_SETFL", e))?;
    fcntl(raw, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| Error::sys("fcntl F_SETFD", e))?;
    Ok(())
}

/// Separate stdout and stderr pipes.
pub struct OutputPipes {
    /// The write ends, for the process.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The non-blocking read ends, tagged with their stream, for the shim.
    pub readers: Vec<(Stream, OwnedFd)>,
}

pub fn output_pipes() -> Result<OutputPipes, Error> {
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    set_cloexec_nonblock(&out_r)?;
    set_cloexec_nonblock(&err_r)?;
    Ok(OutputPipes {
        stdout: out_w,
        stderr: err_w,
        readers: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
    })
}

/// One read of at most [`READ_SIZE`] bytes.
pub fn read_chunk(fd: BorrowedFd<'_>) -> Chunk {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        return match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => Chunk::Eof,
            Ok(n) => {
                buf.truncate(n);
                Chunk::Data(buf)
            }
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => Chunk::Again,
            Err(_) => Chunk::Eof,
        };
    }
}

/// Everything readable now, as read-sized chunks (bounded, so a writer that keeps writing
/// cannot hold the shim here).
pub fn drain(fd: BorrowedFd<'_>) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    for _ in 0..1024 {
        match read_chunk(fd) {
            Chunk::Data(data) => chunks.push(data),
            Chunk::Again | Chunk::Eof => break,
        }
    }
    chunks
}
