//! Receiving datagrams with the kernel's arrival time (`SO_TIMESTAMPNS`).
//!
//! On loopback a datagram is queued on the receiving socket inside the
//! sender's `sendto`, so the kernel timestamp is the moment the SFU sent it.
//! The forwarding delay is then measured without the generator's own
//! scheduling delay (a viewer task that wakes late does not make the SFU look
//! slow); the difference to the time the viewer actually read it is reported
//! separately as the generator's lag.

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel to timestamp every datagram this socket receives.
pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    Ok(setsockopt(socket, sockopt::ReceiveTimestampns, &true)?)
}

fn to_std(addr: Option<SockaddrStorage>) -> io::Result<SocketAddr> {
    let addr = addr.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no sender"))?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Ok(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return Ok(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unknown address family {:?}", addr.family()),
    ))
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
        let mut control = nix::cmsg_space!(TimeSpec);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )?;
        let mut at = None;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                at = Some(ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000);
            }
        }
        Ok((msg.bytes, to_std(msg.address)?, at))
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
