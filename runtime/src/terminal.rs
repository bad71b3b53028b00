//! Pseudo-terminals made inside the container, the way runc's console socket works: the process
//! itself opens `/dev/ptmx` once it sees the container's filesystem (so the terminal belongs to
//! the container's own devpts instance and `tty` there names `/dev/pts/N`), keeps the replica
//! side as its stdio and controlling terminal, and sends the controller side to the caller over
//! a socket pair made before the fork.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};

use crate::Error;
use crate::report::{ChildResult, Step};

/// The two ends of a console socket: the caller keeps `parent`, the child uses `child`.
pub(crate) struct ConsoleSocket {
    pub parent: OwnedFd,
    pub child: OwnedFd,
}

impl ConsoleSocket {
    pub(crate) fn new() -> Result<ConsoleSocket, Error> {
        let (parent, child) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair for the terminal"))?;
        Ok(ConsoleSocket { parent, child })
    }
}

/// Child side: makes a terminal from `ptmx` (`/dev/ptmx` of the container's devpts, opened
/// read-write), sends its controller side over `socket` and returns the replica side
/// (close-on-exec; the caller dups it onto 0, 1 and 2).
#[allow(unsafe_code)]
pub(crate) fn make(ptmx: OwnedFd, socket: RawFd) -> ChildResult<OwnedFd> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which points to a live value.
    if unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(Errno::last()).step("unlock the terminal");
    }
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new descriptor for the
    // replica side of `ptmx`, which is open here.
    let replica = unsafe { libc::ioctl(ptmx.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if replica < 0 {
        return Err(Errno::last()).step("TIOCGPTPEER");
    }
    // SAFETY: `replica` was just returned by the kernel and is owned by nobody else.
    let replica = unsafe { OwnedFd::from_raw_fd(replica) };
    let fds = [ptmx.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"t")];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None).step("send the terminal")?;
    Ok(replica)
}

/// `flags` for opening `/dev/ptmx` in the child.
pub(crate) const PTMX_FLAGS: OFlag = OFlag::O_RDWR.union(OFlag::O_NOCTTY).union(OFlag::O_CLOEXEC);

/// Caller side, once the child reported success: the controller side it sent. Also reads what
/// an OCI runtime sends to its `--console-socket` (one message whose `SCM_RIGHTS` carries it).
#[allow(unsafe_code)]
pub fn receive(socket: &OwnedFd) -> Result<OwnedFd, Error> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(Error::sys("receive the terminal"))?,
        }
    };
    let mut received = None;
    for c in msg.cmsgs().map_err(Error::sys("receive the terminal"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed `fd` in this process for us; nobody else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                received.get_or_insert(fd);
            }
        }
    }
    received.ok_or(Error::Sys {
        step: "receive the terminal: the process sent none",
        source: Errno::EPROTO,
    })
}
