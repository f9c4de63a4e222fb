//! A viewer's own loss: what its receiver reports say, less what never left the SFU.

/// Turns a viewer's receiver reports about one leg into the loss on the viewer's
/// downlink alone.
///
/// A receiver report's `fraction lost` counts every sequence number the viewer
/// expected and did not get, and the leg's sequence numbers mirror the
/// publisher's: a packet lost on the publisher's uplink is a hole in every
/// viewer's sequence. Read as the viewer's own loss, 5 % loss on a phone's uplink
/// moved every viewer's bandwidth estimate down (and a single-layer stream's
/// viewers to audio only) although their links were fine. So the loss of a report
/// interval is taken from what the SFU did send in it: `1 − received / sent`,
/// where `received` comes from the report's cumulative counters and `sent` from
/// the leg's own record ([`TrackForwarder::sent_between`](super::TrackForwarder::sent_between)).
#[derive(Debug, Clone, Default)]
pub struct DownlinkLoss {
    /// The previous report's extended highest sequence number and cumulative loss.
    last: Option<(u32, i32)>,
    /// The first sequence number sent after a pause (audio only), until a report
    /// passes it.
    resumed_at: Option<u16>,
}

impl DownlinkLoss {
    /// A tracker with no report seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// The leg sends again from `seq` after a pause. The report whose interval
    /// spans the pause counts the packets the narrow link dropped before it
    /// (the receiver learns they are missing only when newer ones arrive), so
    /// it is a fresh baseline, not a measurement: else a link that recovered
    /// reads as congested the moment video comes back, however late that
    /// report arrives.
    pub fn resume_at(&mut self, seq: u16) {
        self.resumed_at = Some(seq);
    }

    /// One report block: `highest` (extended highest sequence number received),
    /// `total_lost` (the 24-bit signed cumulative loss), and `sent_between(a, b)`:
    /// how many of the leg's sequence numbers in `(a, b]` were sent, if known.
    /// Returns the interval's downlink loss as an RFC 3550 8-bit fraction, or `None`
    /// for the first report and for an interval with nothing known to be sent.
    pub fn on_report(
        &mut self,
        highest: u32,
        total_lost: u32,
        sent_between: impl Fn(u16, u16) -> Option<u32>,
    ) -> Option<u8> {
        // Sign-extend the 24-bit field.
        let lost = ((total_lost << 8) as i32) >> 8;
        let last = self.last.replace((highest, lost));
        let Some((prev_highest, prev_lost)) = last else {
            // A first report that already passed the resume point is the
            // baseline the resume asks for.
            if let Some(r) = self.resumed_at
                && (r.wrapping_sub(highest as u16) as i16) <= 0
            {
                self.resumed_at = None;
            }
            return None;
        };
        let expected = highest.wrapping_sub(prev_highest);
        if expected == 0 || expected > 0x8000 {
            return None; // nothing new, or the report went backwards
        }
        if let Some(r) = self.resumed_at {
            let into = u32::from(r.wrapping_sub(prev_highest as u16));
            if into != 0 && into <= expected {
                self.resumed_at = None;
                return None; // spans the pause: a new baseline
            }
        }
        let lost_in = lost.saturating_sub(prev_lost).max(0) as u32;
        let received = expected.saturating_sub(lost_in);
        let sent = sent_between(prev_highest as u16, highest as u16)?.max(received);
        if sent == 0 {
            return None;
        }
        let fraction = (sent - received) as u64 * 256 / sent as u64;
        Some(fraction.min(255) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_holes_are_not_the_viewers_loss() {
        let mut d = DownlinkLoss::new();
        // 100 sequence numbers per interval, 5 of them never sent (lost upstream).
        let sent = |_a: u16, _b: u16| Some(95);
        assert_eq!(
            d.on_report(1_000, 0, sent),
            None,
            "first report: a baseline"
        );
        // The viewer lost exactly those 5: its own link lost nothing.
        assert_eq!(d.on_report(1_100, 5, sent), Some(0));
        // It lost 15: 10 of the 95 sent were lost on its link.
        assert_eq!(d.on_report(1_200, 20, sent), Some((10 * 256 / 95) as u8));
        // Late arrivals (retransmissions) can shrink the cumulative count.
        assert_eq!(d.on_report(1_300, 18, sent), Some(0));
    }

    #[test]
    fn the_report_spanning_a_pause_is_a_baseline_not_a_loss() {
        let mut d = DownlinkLoss::new();
        let all = |a: u16, b: u16| Some(b.wrapping_sub(a) as u32);
        assert_eq!(d.on_report(1_000, 0, all), None);
        // The narrow link drops the last 40 of 100 before video pauses.
        assert_eq!(d.on_report(1_060, 0, all), Some(0));
        // Paused (audio only): reports say nothing new about this leg.
        assert_eq!(d.on_report(1_060, 0, all), None);
        // Video resumes at 1_101; the receiver now sees 1_061..=1_100 missing.
        d.resume_at(1_101);
        assert_eq!(
            d.on_report(1_150, 40, all),
            None,
            "what was lost before the pause is not the recovered link's loss"
        );
        // From there on, loss is measured again.
        assert_eq!(d.on_report(1_250, 40, all), Some(0));
        assert_eq!(d.on_report(1_350, 90, all), Some(128));
    }

    #[test]
    fn a_resume_point_not_yet_reached_waits_for_its_report() {
        let mut d = DownlinkLoss::new();
        let all = |a: u16, b: u16| Some(b.wrapping_sub(a) as u32);
        d.on_report(65_500, 0, all);
        d.resume_at(20); // across the 16-bit wrap
        // A report from before the resume arrived measures as usual.
        assert_eq!(d.on_report(65_530, 0, all), Some(0));
        // The one that spans it is a baseline (extended numbers go on past 65_535).
        assert_eq!(d.on_report(65_536 + 40, 30, all), None);
        assert_eq!(d.on_report(65_536 + 140, 30, all), Some(0));
    }

    #[test]
    fn without_a_record_of_what_was_sent_there_is_no_answer() {
        let mut d = DownlinkLoss::new();
        let unknown = |_a: u16, _b: u16| None;
        assert_eq!(d.on_report(10, 0, unknown), None);
        assert_eq!(d.on_report(5_000, 0, unknown), None);
        // A negative cumulative loss (24-bit two's complement) is read as such.
        let all = |a: u16, b: u16| Some(b.wrapping_sub(a) as u32);
        assert_eq!(d.on_report(5_100, 0x00ff_ffff, all), Some(0));
        assert_eq!(d.on_report(5_200, 49, all), Some(128));
        // Nothing new, or going backwards: no answer.
        assert_eq!(d.on_report(5_200, 49, all), None);
        assert_eq!(d.on_report(5_100, 49, all), None);
    }
}
