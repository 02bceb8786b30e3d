/**
 * PeerStats from RTCStatsReports. A mesh link reads one connection whole; in an SFU room one peer's inbound media
 * is a subset of the subscribe connection's streams and its outbound is what the publish connection sends, so the
 * reading takes a filter for inbound streams and a flag for which report gives outbound and round-trip figures.
 */

export interface PeerStats {
  /** Round-trip time of the selected candidate pair, ms (null until known). */
  rttMs: number | null;
  /** Received / sent media bitrate over the interval since the previous call, bits per second. */
  inboundBitrate: number;
  outboundBitrate: number;
  /** Fraction (0–1) of inbound RTP packets lost over the interval since the previous call. */
  packetLoss: number;
  bytesReceived: number;
  bytesSent: number;
  audio: { bytesReceived: number; packetsReceived: number; packetsLost: number };
  video: { bytesReceived: number; packetsReceived: number; packetsLost: number; frameWidth: number; frameHeight: number;
    framesDecoded: number;
    /** Received video bitrate and decoded frames per second over the interval since the previous call. */
    bitrate: number; framesPerSecond: number };
  /** Timestamp of the report (ms, from the stats clock). */
  timestamp: number;
}

/** The counters of the previous reading, from which the next one computes rates. */
export interface StatsSample {
  ts: number;
  bytesIn: number;
  bytesOut: number;
  lost: number;
  received: number;
  videoBytes: number;
  frames: number;
}

export interface StatsSource {
  report: RTCStatsReport;
  /** Which inbound-rtp entries count (all when absent); false counts none. */
  inbound?: ((r: Record<string, unknown>) => boolean) | false;
  /** Whether this report's outbound-rtp entries count. */
  outbound: boolean;
  /** Whether this report's candidate pair gives the round-trip time. */
  rtt: boolean;
}

export function emptyStats(): PeerStats {
  return {
    rttMs: null, inboundBitrate: 0, outboundBitrate: 0, packetLoss: 0, bytesReceived: 0, bytesSent: 0,
    audio: { bytesReceived: 0, packetsReceived: 0, packetsLost: 0 },
    video: { bytesReceived: 0, packetsReceived: 0, packetsLost: 0, frameWidth: 0, frameHeight: 0, framesDecoded: 0,
      bitrate: 0, framesPerSecond: 0 },
    timestamp: 0,
  };
}

/** Sums the sources into one PeerStats; rates are over the time since `prev` (none without it). */
export function readStats(sources: StatsSource[], prev: StatsSample | null): { stats: PeerStats; sample: StatsSample } {
  const s = emptyStats();
  for (const src of sources) {
    let selectedPair: string | undefined;
    const pairs = new Map<string, Record<string, unknown>>();
    let remoteRtt: number | null = null;
    src.report.forEach((r: Record<string, unknown>) => {
      const ts = Number(r.timestamp ?? 0);
      if (ts > s.timestamp) s.timestamp = ts;
      switch (r.type) {
        case 'transport':
          if (typeof r.selectedCandidatePairId === 'string') selectedPair = r.selectedCandidatePairId;
          break;
        case 'candidate-pair':
          pairs.set(String(r.id), r);
          break;
        case 'inbound-rtp': {
          if (src.inbound === false || (src.inbound && !src.inbound(r))) break;
          const kind = r.kind === 'audio' ? s.audio : r.kind === 'video' ? s.video : null;
          const bytes = Number(r.bytesReceived ?? 0);
          s.bytesReceived += bytes;
          if (kind) {
            kind.bytesReceived += bytes;
            kind.packetsReceived += Number(r.packetsReceived ?? 0);
            kind.packetsLost += Number(r.packetsLost ?? 0);
          }
          if (r.kind === 'video') {
            s.video.frameWidth = Math.max(s.video.frameWidth, Number(r.frameWidth ?? 0));
            s.video.frameHeight = Math.max(s.video.frameHeight, Number(r.frameHeight ?? 0));
            s.video.framesDecoded += Number(r.framesDecoded ?? 0);
          }
          break;
        }
        case 'outbound-rtp':
          if (src.outbound) s.bytesSent += Number(r.bytesSent ?? 0);
          break;
        case 'remote-inbound-rtp':
          if (typeof r.roundTripTime === 'number') remoteRtt = r.roundTripTime;
          break;
      }
    });
    if (!src.rtt) continue;
    let pair = selectedPair ? pairs.get(selectedPair) : undefined;
    if (!pair) pair = [...pairs.values()].find((p) => p.nominated === true && p.state === 'succeeded');
    if (pair && typeof pair.currentRoundTripTime === 'number') s.rttMs = pair.currentRoundTripTime * 1000;
    else if (remoteRtt !== null) s.rttMs = remoteRtt * 1000;
  }

  const lost = s.audio.packetsLost + s.video.packetsLost;
  const received = s.audio.packetsReceived + s.video.packetsReceived;
  if (prev && s.timestamp > prev.ts) {
    const secs = (s.timestamp - prev.ts) / 1000;
    s.inboundBitrate = Math.max(0, ((s.bytesReceived - prev.bytesIn) * 8) / secs);
    s.outboundBitrate = Math.max(0, ((s.bytesSent - prev.bytesOut) * 8) / secs);
    const dLost = Math.max(0, lost - prev.lost);
    const dRecv = Math.max(0, received - prev.received);
    s.packetLoss = dLost + dRecv > 0 ? dLost / (dLost + dRecv) : 0;
    s.video.bitrate = Math.max(0, ((s.video.bytesReceived - prev.videoBytes) * 8) / secs);
    s.video.framesPerSecond = Math.max(0, (s.video.framesDecoded - prev.frames) / secs);
  }
  const sample: StatsSample = { ts: s.timestamp, bytesIn: s.bytesReceived, bytesOut: s.bytesSent, lost, received,
    videoBytes: s.video.bytesReceived, frames: s.video.framesDecoded };
  return { stats: s, sample };
}
