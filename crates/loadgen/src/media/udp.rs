//! Receiving datagrams with the kernel's arrival time (`SO_TIMESTAMPNS`).
//!
//! On loopback a datagram is queued on the receiving socket inside the
//! sender's `sendto`, so the kernel timestamp is the moment the SFU sent it.
//! The forwarding delay is then measured without the generator's own
//! scheduling delay (a viewer task that wakes late does not make the SFU look
//! slow); the difference to the time the viewer actually read it is reported
//! separately as the generator's lag.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel to timestamp every datagram this socket receives.
pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn to_std(addr: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unknown address family",
        )),
    }
}

/// Receives one datagram without waiting: (length, sender, kernel arrival
/// time in µs since the UNIX epoch if the kernel gave one). `WouldBlock` when
/// nothing is queued (and the socket's readiness is cleared, as with
/// `try_recv_from`).
pub fn try_recv(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u64>)> {
    socket.try_io(Interest::READABLE, || {
        // SAFETY: every pointer in `msg` points at locals that outlive the
        // call, with their true sizes; the control buffer is 8-byte aligned
        // as cmsg headers require.
        unsafe {
            let mut addr: libc::sockaddr_storage = zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut control = [0u64; 8];
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control) as _;
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut at = None;
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    at = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            Ok((n as usize, to_std(&addr)?, at))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_carry_their_arrival_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable_timestamps(&rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = crate::clock::wall_us();
        tx.send_to(b"hello", rx.local_addr().unwrap())
            .await
            .unwrap();
        rx.readable().await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from, at) = try_recv(&rx, &mut buf).unwrap();
        let after = crate::clock::wall_us();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, tx.local_addr().unwrap());
        let at = at.expect("kernel timestamp");
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        assert_eq!(
            try_recv(&rx, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
