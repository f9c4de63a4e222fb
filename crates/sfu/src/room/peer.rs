//! One session's peer connection as the room holds it.

use super::{NewPeer, Outbox, Output};
use crate::SessionId;
use crate::dtls_order::DtlsOrder;
use crate::egress::drain;
use crate::net::CountGuard;
use crate::net::SessionSockets;
use crate::pending::PendingSlot;
use bytes::BytesMut;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext};
use std::time::Instant;

pub(super) struct Peer {
    pub(super) key: u64,
    pub(super) id: SessionId,
    pub(super) ufrag: String,
    pub(super) pc: RTCPeerConnection,
    pub(super) sockets: SessionSockets,
    pub(super) _guard: CountGuard,
    pub(super) pending: PendingSlot,
    pub(super) deadline: Option<Instant>,
    pub(super) state: RTCPeerConnectionState,
    pub(super) connected_once: bool,
    pub(super) created: Instant,
    /// Until the handshake is done: the peer's DTLS records in the order it sent
    /// them (see [`DtlsOrder`]).
    pub(super) dtls_order: Option<DtlsOrder>,
}

impl Peer {
    pub(super) fn new(p: NewPeer, now: Instant) -> Self {
        Self {
            key: p.key,
            id: p.id,
            ufrag: p.ufrag,
            pc: p.pc,
            sockets: p.sockets,
            _guard: p.guard,
            pending: p.pending,
            deadline: Some(now),
            state: RTCPeerConnectionState::New,
            connected_once: false,
            created: now,
            dtls_order: Some(DtlsOrder::default()),
        }
    }

    /// A datagram from the peer's address into its peer connection.
    pub(super) fn read(&mut self, transport: TransportContext, data: BytesMut, at: Instant) {
        let pc = &mut self.pc;
        let mut deliver = |message: BytesMut| {
            if let Err(e) = pc.handle_read(TaggedBytesMut {
                now: at,
                transport,
                message,
            }) {
                tracing::trace!("handle_read: {e}");
            }
        };
        match self.dtls_order.as_mut() {
            Some(order) => order.push(data, deliver),
            None => deliver(data),
        }
    }

    /// Queue every datagram the peer connection has ready.
    pub(super) fn flush(&mut self, out: &mut Outbox) {
        let sockets = &self.sockets;
        drain(&mut self.pc, |o| {
            out.push(Output::Transmit {
                sockets,
                transport: o.transport,
                data: o.message,
            })
        });
    }

    pub(super) fn refresh_deadline(&mut self) {
        self.deadline = self.pc.poll_timeout();
    }

    pub(super) fn connected(&self) -> bool {
        self.state == RTCPeerConnectionState::Connected
    }

    /// ICE and DTLS completed: from now on the session is a real viewer (or
    /// publisher), no longer one of its address's or room's pending ones.
    pub(super) fn on_connected(&mut self) {
        self.connected_once = true;
        self.dtls_order = None;
        self.pending.release();
    }
}
