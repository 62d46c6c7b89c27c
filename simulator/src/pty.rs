//! Pseudo-terminals as virtual serial devices.
//!
//! The simulator holds the master side; the agent opens the slave side by path, through
//! the `serialport` crate, exactly as it opens a real device. A symlink gives the
//! device a stable name (`kassa-data/dev/scanner`), as udev does for real ones.
//!
//! The simulator also keeps the slave open itself (never reading it): otherwise every
//! time the agent closes and reopens the port, reads on the master fail with EIO.
//!
//! Dropping a [`Pty`] is unplugging the device: the master closes, the agent's reads and
//! writes on the slave fail, and the symlink goes away as a device node does.
//!
//! The master is non-blocking: a device whose host stopped reading must not hang the
//! console, so writes give up after [`WRITE_TIMEOUT`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// How long a write waits for the host to drain the pty's buffer (a few KiB).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Pty {
    master: File,
    _slave: OwnedFd,
    slave_path: PathBuf,
    link: Option<PathBuf>,
}

impl Pty {
    /// Opens a pty in raw mode (no echo, no line editing: bytes pass untouched) and, if
    /// `link` is given, points that symlink at the slave.
    pub fn open(link: Option<&Path>) -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        let mut t = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t)?;
        let slave_path = nix::unistd::ttyname(&pair.slave)?;
        fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        if let Some(link) = link {
            if let Some(dir) = link.parent() {
                std::fs::create_dir_all(dir)?;
            }
            match std::fs::remove_file(link) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            std::os::unix::fs::symlink(&slave_path, link)?;
        }
        Ok(Pty { master: File::from(pair.master), _slave: pair.slave, slave_path, link: link.map(Path::to_owned) })
    }

    /// The path the agent opens: the symlink if there is one, else the slave itself.
    pub fn path(&self) -> &Path {
        self.link.as_deref().unwrap_or(&self.slave_path)
    }

    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Writes all of `bytes`, waiting up to [`WRITE_TIMEOUT`] in all for room.
    pub fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let deadline = std::time::Instant::now() + WRITE_TIMEOUT;
        let mut rest = bytes;
        while !rest.is_empty() {
            match (&self.master).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "the host is not reading"));
                    }
                    let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                    let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLOUT)];
                    poll(&mut fds, PollTimeout::from(ms))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the agent wrote, waiting at most `timeout`; `Ok(0)` on timeout.
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(0);
        }
        match (&self.master).read(buf) {
            // Woken but nothing to read after all: the same as a timeout.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            // Only remove the link if it still points at our slave (a newer device
            // may have taken the name).
            if std::fs::read_link(link).is_ok_and(|t| t == self.slave_path) {
                let _ = std::fs::remove_file(link);
            }
        }
    }
}
