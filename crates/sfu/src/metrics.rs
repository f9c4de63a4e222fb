//! Media counters for an operator's `/metrics`: the SFU keeps them as atomics its
//! room tasks bump; [`Sfu::media_metrics`](crate::Sfu::media_metrics) snapshots
//! them and [`render_prometheus`] writes them in the Prometheus text format for the
//! binary to append to its own registry's output.
//!
//! Each broadcast is one room task today, so a broadcast's counters are also its
//! worker's: `busy_seconds` is the CPU the broadcast's forwarding took.

use std::fmt::Write;

/// Counters of one broadcast since its room started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastMetrics {
    /// Room name.
    pub room: String,
    /// Connected viewers now.
    pub viewers: usize,
    /// Publisher RTP packets received and decrypted (once, for all viewers).
    pub packets_in: u64,
    /// RTP packets forwarded to viewers (one per packet per viewer).
    pub packets_out: u64,
    /// Their RTP bytes (header and payload, before SRTP).
    pub bytes_out: u64,
    /// Datagrams dropped on send (full socket buffer or TCP queue).
    pub send_drops: u64,
    /// Fan-outs run, and the publisher packets they carried: `fanned_packets /
    /// fan_outs` is the mean batch a viewer's send path gets.
    pub fan_outs: u64,
    /// See `fan_outs`.
    pub fanned_packets: u64,
    /// Messages waiting in the room's mailbox when it last took one.
    pub queue_depth: u64,
    /// Most messages seen waiting there.
    pub queue_depth_max: u64,
    /// Time the room's task spent working rather than waiting (≈ its CPU time).
    pub busy_seconds: f64,
}

/// Prometheus text exposition of `rooms` (one series per room, labelled `room`).
pub fn render_prometheus(rooms: &[BroadcastMetrics]) -> String {
    type Get = fn(&BroadcastMetrics) -> f64;
    let families: [(&str, &str, &str, Get); 10] = [
        (
            "fieldcast_sfu_viewers",
            "gauge",
            "Connected viewers.",
            |m| m.viewers as f64,
        ),
        (
            "fieldcast_sfu_packets_in_total",
            "counter",
            "Publisher RTP packets received.",
            |m| m.packets_in as f64,
        ),
        (
            "fieldcast_sfu_packets_out_total",
            "counter",
            "RTP packets forwarded to viewers.",
            |m| m.packets_out as f64,
        ),
        (
            "fieldcast_sfu_bytes_out_total",
            "counter",
            "RTP bytes forwarded to viewers (before SRTP).",
            |m| m.bytes_out as f64,
        ),
        (
            "fieldcast_sfu_send_drops_total",
            "counter",
            "Datagrams dropped on send.",
            |m| m.send_drops as f64,
        ),
        (
            "fieldcast_sfu_fan_outs_total",
            "counter",
            "Fan-outs run.",
            |m| m.fan_outs as f64,
        ),
        (
            "fieldcast_sfu_fanned_packets_total",
            "counter",
            "Publisher packets carried by fan-outs (divided by fan-outs: the send batch size).",
            |m| m.fanned_packets as f64,
        ),
        (
            "fieldcast_sfu_queue_depth",
            "gauge",
            "Messages waiting in the room task's mailbox.",
            |m| m.queue_depth as f64,
        ),
        (
            "fieldcast_sfu_queue_depth_max",
            "gauge",
            "Most messages seen waiting in the room task's mailbox.",
            |m| m.queue_depth_max as f64,
        ),
        (
            "fieldcast_sfu_busy_seconds_total",
            "counter",
            "Time the room task spent working (its CPU).",
            |m| m.busy_seconds,
        ),
    ];
    let mut out = String::new();
    if rooms.is_empty() {
        return out;
    }
    for (name, kind, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for m in rooms {
            let _ = writeln!(
                out,
                "{name}{{room=\"{}\"}} {}",
                escape_label(&m.room),
                get(m)
            );
        }
    }
    out
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_series_per_room_with_escaped_labels() {
        let text = render_prometheus(&[
            BroadcastMetrics {
                room: "b1".into(),
                viewers: 3,
                packets_in: 10,
                packets_out: 30,
                busy_seconds: 0.25,
                ..Default::default()
            },
            BroadcastMetrics {
                room: "a\"b\\c".into(),
                ..Default::default()
            },
        ]);
        assert!(text.contains("# TYPE fieldcast_sfu_packets_out_total counter\n"));
        assert!(text.contains("fieldcast_sfu_packets_out_total{room=\"b1\"} 30\n"));
        assert!(text.contains("fieldcast_sfu_viewers{room=\"b1\"} 3\n"));
        assert!(text.contains("fieldcast_sfu_busy_seconds_total{room=\"b1\"} 0.25\n"));
        assert!(text.contains("fieldcast_sfu_viewers{room=\"a\\\"b\\\\c\"} 0\n"));
        assert_eq!(render_prometheus(&[]), "");
    }
}
