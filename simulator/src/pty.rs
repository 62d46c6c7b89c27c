//! Pseudo-terminals as virtual serial devices.
//!
//! The simulator holds the master side; the agent opens the slave side by path, through
//! the `serialport` crate, exactly as it opens a real device. A symlink gives the
//! device a stable name (`kassa-data/dev/scanner`), as udev does for real ones.
//!
//! The simulator also keeps the slave open itself (never reading it): otherwise every
//! time the agent closes and reopens the port, reads on the master fail with EIO.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

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

    pub fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.master).write_all(bytes)?;
        (&self.master).flush()
    }

    /// Reads what the agent wrote, waiting at most `timeout`; `Ok(0)` on timeout.
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(0);
        }
        (&self.master).read(buf)
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
