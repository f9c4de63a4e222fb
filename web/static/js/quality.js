// Connection quality for the farmer, from WebRTC statistics: one word
// (good / fair / poor) a farmer can act on (walk towards the road, wait).

/**
 * @param {{kbps:number, rttMs:number|null, lossPct:number|null}} s
 * @returns {'good'|'fair'|'poor'}
 */
export function classify({ kbps, rttMs, lossPct }) {
  const rtt = rttMs ?? 0;
  const loss = lossPct ?? 0;
  if (loss >= 8 || rtt >= 800 || kbps < 150) return 'poor';
  if (loss >= 3 || rtt >= 350 || kbps < 450) return 'fair';
  return 'good';
}

/**
 * Turns two getStats() snapshots of a sending connection into numbers.
 * Upload bitrate is all outbound video (every simulcast layer); RTT and loss
 * come from the server's receiver reports when it sends them, else from the
 * ICE candidate pair.
 */
export function sample(report, previous) {
  let bytes = 0;
  let packets = 0;
  let lost = null;
  let rtt = null;
  let pairRtt = null;
  let at = 0;
  report.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      bytes += s.bytesSent || 0;
      packets += s.packetsSent || 0;
      at = Math.max(at, s.timestamp || 0);
    } else if (s.type === 'remote-inbound-rtp' && s.kind === 'video') {
      if (typeof s.roundTripTime === 'number') rtt = Math.max(rtt ?? 0, s.roundTripTime * 1000);
      if (typeof s.packetsLost === 'number') lost = (lost ?? 0) + Math.max(0, s.packetsLost);
    } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      if (typeof s.currentRoundTripTime === 'number') pairRtt = s.currentRoundTripTime * 1000;
    }
  });
  const now = { bytes, packets, lost, at: at || performance.now() };
  if (!previous) return { now, stats: null };
  const seconds = Math.max(0.001, (now.at - previous.at) / 1000);
  const kbps = Math.max(0, Math.round(((bytes - previous.bytes) * 8) / seconds / 1000));
  const sent = packets - previous.packets;
  let lossPct = null;
  if (lost !== null && previous.lost !== null && sent > 0) {
    const newlyLost = Math.max(0, lost - previous.lost);
    lossPct = Math.round((1000 * newlyLost) / (sent + newlyLost)) / 10;
  }
  const rttMs = rtt ?? pairRtt;
  return { now, stats: { kbps, rttMs: rttMs === null ? null : Math.round(rttMs), lossPct } };
}
