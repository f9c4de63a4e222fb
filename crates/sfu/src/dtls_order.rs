//! Hands a peer's DTLS handshake to rtc in the order the peer sent it.
//!
//! Phone networks reorder: a flight of DTLS handshake datagrams sent back to back
//! arrives shuffled by a few milliseconds of jitter, and OpenSSL (GStreamer, many
//! phones' native stacks) sends each handshake message in its own datagram. rtc's
//! DTLS (`rtc-dtls` 0.21) copes with neither of two orders this produces, and both
//! were measured to fail a GStreamer publisher's handshake every time behind a
//! 30 ms path with 0–10 ms of jitter:
//!
//! * **A later message of a flight first.** Any handshake fragment wakes the
//!   handshake state machine; the client's first flight then finds neither
//!   HelloVerifyRequest nor ServerHello in its cache (the out-of-order Certificate
//!   is buffered, not usable yet) and answers with a *fatal* `internal_error`
//!   alert instead of reading on. The peer tears the handshake down.
//! * **Finished before ChangeCipherSpec.** The epoch-1 Finished is queued, but the
//!   queue is drained as soon as rtc's own keys are ready, before the
//!   ChangeCipherSpec moved the peer to epoch 1, and the record is thrown away;
//!   the peer repeats it only after its retransmission timer.
//!
//! So until the handshake is done, [`DtlsOrder`] holds a datagram whose epoch-0
//! handshake records run ahead of the next message the peer's sequence needs
//! (RFC 6347 `message_seq`, fragments counted until the message is whole), and a
//! datagram with epoch-1 records until a ChangeCipherSpec has gone through, and
//! releases each as soon as what comes before it was delivered. At most
//! [`MAX_HELD`] datagrams wait; beyond that the oldest goes on unchanged, as it
//! would have without this. Non-DTLS datagrams pass untouched.

use bytes::BytesMut;

/// Most datagrams held at once: a flight is a handful of datagrams; more than
/// this waiting is not a handshake in progress.
pub(crate) const MAX_HELD: usize = 8;

const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;
const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;

/// One epoch-0 handshake fragment: `(message_seq, offset, fragment length, message length)`.
type Fragment = (u16, u32, u32, u32);

/// What the records of one DTLS datagram are, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    ChangeCipherSpec,
    Handshake(Fragment),
    /// Any record of epoch 1 or later (encrypted: nothing more can be read).
    Encrypted,
    /// Alerts, application data in the clear, unreadable handshake headers.
    Other,
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// The records of a DTLS datagram (RFC 6347 §4.1, §4.2.2), or `None` if it is
/// not DTLS (RFC 7983: first byte 20–63). Never panics: a truncated record ends
/// the walk.
fn records(d: &[u8]) -> Option<Vec<Record>> {
    if !(20..=63).contains(d.first()?) {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(h) = d.get(at..at + RECORD_HEADER) {
        let epoch = u16::from_be_bytes([h[3], h[4]]);
        let len = u16::from_be_bytes([h[11], h[12]]) as usize;
        let body = d.get(at + RECORD_HEADER..at + RECORD_HEADER + len);
        out.push(match (h[0], epoch, body) {
            (CHANGE_CIPHER_SPEC, 0, _) => Record::ChangeCipherSpec,
            (_, 1.., _) => Record::Encrypted,
            (HANDSHAKE, 0, Some(b)) if b.len() >= HANDSHAKE_HEADER => Record::Handshake((
                u16::from_be_bytes([b[4], b[5]]),
                u24(&b[6..9]),
                u24(&b[9..12]),
                u24(&b[1..4]),
            )),
            _ => Record::Other,
        });
        at += RECORD_HEADER + len;
    }
    Some(out)
}

/// Per peer, until its handshake is done (sans-I/O).
#[derive(Debug, Default)]
pub(crate) struct DtlsOrder {
    /// The peer's next handshake message, and the byte ranges of it seen so far.
    next_seq: u16,
    next_ranges: Vec<(u32, u32)>,
    peer_changed_cipher: bool,
    held: Vec<(BytesMut, Vec<Record>)>,
}

impl DtlsOrder {
    /// A datagram from the peer: hands what may be delivered now, in order, to
    /// `deliver`.
    pub fn push(&mut self, d: BytesMut, mut deliver: impl FnMut(BytesMut)) {
        let Some(recs) = records(&d) else {
            deliver(d);
            return;
        };
        if !self.in_order(&recs) {
            if self.held.len() == MAX_HELD {
                let (oldest, recs) = self.held.remove(0);
                self.account(&recs);
                deliver(oldest);
            }
            self.held.push((d, recs));
            return;
        }
        self.account(&recs);
        deliver(d);
        // What waited for this may follow now.
        while let Some(i) = self.held.iter().position(|(_, r)| self.in_order(r)) {
            let (d, recs) = self.held.remove(i);
            self.account(&recs);
            deliver(d);
        }
    }

    /// Whether nothing in `recs` needs something not delivered yet: every epoch-0
    /// handshake fragment belongs to a message up to the next one (counting the
    /// messages the datagram itself completes), and encrypted records come after a
    /// ChangeCipherSpec.
    fn in_order(&self, recs: &[Record]) -> bool {
        let mut probe = Probe {
            next_seq: self.next_seq,
            ranges: self.next_ranges.clone(),
            changed_cipher: self.peer_changed_cipher,
        };
        recs.iter().all(|r| probe.take(r))
    }

    fn account(&mut self, recs: &[Record]) {
        let mut probe = Probe {
            next_seq: self.next_seq,
            ranges: std::mem::take(&mut self.next_ranges),
            changed_cipher: self.peer_changed_cipher,
        };
        for r in recs {
            probe.take(r);
        }
        self.next_seq = probe.next_seq;
        self.next_ranges = probe.ranges;
        self.peer_changed_cipher = probe.changed_cipher;
    }

    /// Datagrams waiting for what comes before them.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// The handshake position while walking records.
struct Probe {
    next_seq: u16,
    ranges: Vec<(u32, u32)>,
    changed_cipher: bool,
}

impl Probe {
    /// Takes one record; returns whether it was in order.
    fn take(&mut self, r: &Record) -> bool {
        match *r {
            Record::ChangeCipherSpec => {
                self.changed_cipher = true;
                true
            }
            Record::Encrypted => self.changed_cipher,
            Record::Other => true,
            Record::Handshake((seq, offset, len, total)) => {
                if seq < self.next_seq {
                    return true; // a retransmission of something already whole
                }
                if seq > self.next_seq {
                    return false;
                }
                self.ranges.push((offset, offset.saturating_add(len)));
                if covered(&mut self.ranges) >= total {
                    self.next_seq = self.next_seq.wrapping_add(1);
                    self.ranges.clear();
                }
                true
            }
        }
    }
}

/// Bytes of a message covered from offset 0 without a hole (merges `ranges`).
fn covered(ranges: &mut [(u32, u32)]) -> u32 {
    ranges.sort_unstable();
    let mut end = 0;
    for &(start, stop) in ranges.iter() {
        if start > end {
            break;
        }
        end = end.max(stop);
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content: u8, epoch: u16, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content, 0xfe, 0xfd];
        r.extend_from_slice(&epoch.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    /// An epoch-0 handshake record: message `seq` of `total` bytes, this fragment
    /// at `offset` with `len` bytes.
    fn hs(seq: u16, offset: u32, len: u32, total: u32) -> Vec<u8> {
        let mut b = vec![2];
        b.extend_from_slice(&total.to_be_bytes()[1..]);
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes()[1..]);
        b.extend_from_slice(&len.to_be_bytes()[1..]);
        b.extend(std::iter::repeat_n(0xab, len as usize));
        record(HANDSHAKE, 0, &b)
    }

    fn run(order: &mut DtlsOrder, datagrams: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for d in datagrams {
            order.push(BytesMut::from(&d[..]), |x| out.push(x.to_vec()));
        }
        out
    }

    #[test]
    fn a_shuffled_server_flight_is_delivered_in_message_order() {
        // OpenSSL's ServerHello, Certificate, ServerKeyExchange, CertificateRequest
        // and ServerHelloDone, one datagram each, arriving shuffled.
        let flight: Vec<Vec<u8>> = (0..5).map(|s| hs(s, 0, 20, 20)).collect();
        let arrival = [&flight[2], &flight[1], &flight[0], &flight[4], &flight[3]];
        let mut o = DtlsOrder::default();
        let got = run(&mut o, &arrival.map(|d| d.clone()));
        assert_eq!(got, flight);
        assert_eq!(o.held(), 0);
        // Retransmissions of what was delivered pass at once.
        assert_eq!(
            run(&mut o, std::slice::from_ref(&flight[1])),
            vec![flight[1].clone()]
        );
    }

    #[test]
    fn fragments_complete_a_message_in_any_order() {
        let first = hs(0, 0, 100, 300);
        let middle = hs(0, 100, 100, 300);
        let last = hs(0, 200, 100, 300);
        let next = hs(1, 0, 10, 10);
        let mut o = DtlsOrder::default();
        // Fragments of the next message go through as they come; the message
        // after it waits until the first is whole.
        let got = run(&mut o, &[last.clone(), next.clone(), first.clone()]);
        assert_eq!(got, vec![last.clone(), first.clone()]);
        assert_eq!(o.held(), 1);
        let got = run(&mut o, std::slice::from_ref(&middle));
        assert_eq!(got, vec![middle, next]);
    }

    #[test]
    fn an_early_finished_follows_the_change_cipher_spec() {
        let ccs = record(CHANGE_CIPHER_SPEC, 0, &[1]);
        let finished = record(HANDSHAKE, 1, &[0xaa; 40]);
        let mut o = DtlsOrder::default();
        assert!(run(&mut o, std::slice::from_ref(&finished)).is_empty());
        assert_eq!(o.held(), 1);
        assert_eq!(
            run(&mut o, std::slice::from_ref(&ccs)),
            vec![ccs.clone(), finished.clone()]
        );
        assert_eq!(run(&mut o, std::slice::from_ref(&finished)), vec![finished]);
    }

    #[test]
    fn in_order_traffic_and_non_dtls_pass_untouched() {
        let mut o = DtlsOrder::default();
        let stun = vec![0x00, 0x01, 0x00, 0x00];
        let rtp = vec![0x80, 96, 0, 1];
        // A whole flight in one datagram, CCS and Finished included.
        let mut flight = hs(0, 0, 30, 30);
        flight.extend(hs(1, 0, 30, 30));
        flight.extend(record(CHANGE_CIPHER_SPEC, 0, &[1]));
        flight.extend(record(HANDSHAKE, 1, &[0xbb; 40]));
        let got = run(&mut o, &[stun.clone(), flight.clone(), rtp.clone()]);
        assert_eq!(got, vec![stun, flight, rtp]);
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn holding_is_bounded_and_garbage_passes() {
        let mut o = DtlsOrder::default();
        let ahead = hs(9, 0, 10, 10);
        let many = vec![ahead.clone(); MAX_HELD + 3];
        assert_eq!(run(&mut o, &many).len(), 3);
        assert_eq!(o.held(), MAX_HELD);
        // Truncated or lying records are walked without panicking, and pass.
        let mut liar = hs(0, 0, 4, 4);
        liar[11] = 0xff;
        for junk in [
            vec![22u8],
            vec![22, 0xfe, 0xfd, 0, 1],
            hs(0, 0, 5, 5)[..15].to_vec(),
            liar,
        ] {
            let mut fresh = DtlsOrder::default();
            assert_eq!(run(&mut fresh, std::slice::from_ref(&junk)), vec![junk]);
        }
    }
}
