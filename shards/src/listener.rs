//! The listening sockets: one per shard, all on the same address with
//! SO_REUSEPORT, so the kernel spreads incoming connections across shards and
//! no shard ever hands a connection to another.
//!
//! Sockets are created with socket2 in the starting thread and passed to the
//! shards as raw fds, because glommio wraps a raw fd into its listener on the
//! shard (and uses socket2 0.4 internally, so types do not line up).

use std::{io, net::SocketAddr, os::fd::OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Binds `count` listeners on `addr`.
///
/// The first one binds `addr` as given; the rest bind the address it actually
/// got, so that port 0 resolves to one port shared by every shard instead of
/// each shard getting its own random port. Returns the fds and that address.
pub(crate) fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let first = bind_one(addr, backlog)?;
    let local = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has a non-IP local address"))?;
    let mut fds = vec![OwnedFd::from(first)];
    for _ in 1..count {
        fds.push(bind_one(local, backlog)?.into());
    }
    Ok((fds, local))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    let with_context =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} {addr}: {e}"));
    // REUSEPORT is what lets every shard bind the same port. REUSEADDR lets
    // a restarted proxy bind a fixed port while old connections sit in
    // TIME_WAIT; it is left off for port 0 because with it the kernel's
    // port-0 autobind may hand out a port that another REUSEADDR socket has
    // bound but not yet put in listen, and the two servers then silently
    // share a port (seen with tests starting servers in parallel).
    socket
        .set_reuse_address(addr.port() != 0)
        .and_then(|()| socket.set_reuse_port(true))
        .map_err(|e| with_context("cannot set SO_REUSEADDR/SO_REUSEPORT on", e))?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|e| with_context("cannot bind", e))?;
    // The kernel caps this at net.core.somaxconn; clamp to what listen() takes.
    let backlog = backlog.min(i32::MAX as u32) as i32;
    socket
        .listen(backlog)
        .map_err(|e| with_context("cannot listen on", e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_resolves_once_for_all_shards() {
        let (fds, local) = bind_listeners("127.0.0.1:0".parse().unwrap(), 3, 128).unwrap();
        assert_eq!(fds.len(), 3);
        assert_ne!(local.port(), 0);
        for fd in fds {
            let s = Socket::from(fd);
            assert_eq!(s.local_addr().unwrap().as_socket().unwrap(), local);
        }
    }

    #[test]
    fn bind_error_names_the_address() {
        // Without SO_REUSEPORT on the holder, binding the same port must fail.
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let err = bind_listeners(addr, 1, 128).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
