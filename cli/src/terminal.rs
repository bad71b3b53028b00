//! The local terminal of a streaming session: raw mode (restored by a guard on every exit path),
//! window sizes (the initial one and each `SIGWINCH`'s), and a stdin reader that never blocks
//! the runtime's shutdown.

use std::io::Read as _;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use anyhow::Context as _;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Bytes read from stdin at once.
const CHUNK: usize = 32 << 10;

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// The terminal on stdin in raw mode; dropping it restores the saved settings.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin into raw mode (Ctrl-C, Ctrl-Z and friends reach the remote
    /// side as bytes instead of signalling this process).
    pub fn enable() -> anyhow::Result<RawMode> {
        let saved = termios::tcgetattr(std::io::stdin().as_fd())
            .context("reading the terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &raw)
            .context("putting the terminal into raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing better to do with a failure here than leave the terminal as it is.
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSAFLUSH, &self.saved);
    }
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The size of the terminal on stdin as `(width, height)`, if it has one.
#[allow(unsafe_code)]
pub fn window_size() -> Option<(u16, u16)> {
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the buffer we own.
    let result = unsafe { tiocgwinsz(std::io::stdin().as_fd().as_raw_fd(), &mut size) };
    match result {
        Ok(_) if size.ws_col > 0 && size.ws_row > 0 => Some((size.ws_col, size.ws_row)),
        _ => None,
    }
}

/// Window sizes for the session: the current one, then one per `SIGWINCH`. The task ends when
/// the session drops the receiver.
pub fn window_sizes() -> anyhow::Result<mpsc::Receiver<(u16, u16)>> {
    let mut winch = signal(SignalKind::window_change()).context("watching SIGWINCH")?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Some(size) = window_size()
            && tx.send(size).await.is_err()
        {
            return;
        }
        while winch.recv().await.is_some() {
            if let Some(size) = window_size()
                && tx.send(size).await.is_err()
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// Stdin read by a plain thread. Unlike `tokio::io::stdin`, whose blocking read cannot be
/// cancelled and holds up the runtime's shutdown until the user presses a key, a detached
/// thread does not keep the process alive once `main` returns.
pub struct Stdin {
    chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    at: usize,
}

impl Stdin {
    pub fn spawn() -> Stdin {
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let chunk = match stdin.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        Stdin {
            chunks: rx,
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.at < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.at);
                buf.put_slice(&this.pending[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(this.chunks.poll_recv(cx)) {
                Some(Ok(chunk)) => {
                    this.pending = chunk;
                    this.at = 0;
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}
