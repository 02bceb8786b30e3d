// Page helpers of the simulcast browser tests: the SFU video streams' stats from getStats, and a tile's rendered size.
/** Installs window.__video(): the page's SFU video streams from getStats — the publisher's outbound encodings that
 * sent something (`rids`) and the inbound stream's frame height and frames decoded. */
export async function installVideoStats(page) {
  await page.evaluate(() => {
    window.__video = async () => {
      const out = { rids: [], frameHeight: 0, framesDecoded: 0 };
      const conns = window.kaiwa.room.sfuConnections();
      for (const pc of [conns?.publish, conns?.subscribe]) {
        if (!pc) continue;
        (await pc.getStats()).forEach((s) => {
          if (s.kind !== 'video') return;
          if (s.type === 'outbound-rtp' && s.rid && s.bytesSent > 0) out.rids.push(s.rid);
          if (s.type === 'inbound-rtp') Object.assign(out, { frameHeight: s.frameHeight ?? 0, framesDecoded: s.framesDecoded ?? 0 });
        });
      }
      out.rids.sort();
      return out;
    };
  });
}

export const videoStats = (page) => page.evaluate(() => window.__video());

/** Sets the rendered size of the publisher's tile on the viewer's page (CSS pixels; null: the layout's own). */
export async function sizeTile(page, peerId, size) {
  await page.evaluate(([id, sz]) => {
    const v = document.querySelector(`[data-testid="tile"][data-peer-id="${id}"] video`);
    if (sz === 'hidden') {
      v.style.display = 'none';
    } else if (sz) {
      Object.assign(v.style, { display: '', width: `${sz[0]}px`, height: `${sz[1]}px`, objectFit: 'contain' });
    } else {
      Object.assign(v.style, { display: '', width: '', height: '' });
    }
  }, [peerId, size]);
}

/** The local UDP port of the page's SFU subscribe connection (its selected candidate pair): where kaiwa sends it media. */
export async function subscribePort(page) {
  return page.evaluate(async () => {
    const pc = window.kaiwa.room.sfuConnections()?.subscribe;
    if (!pc) return 0;
    const stats = await pc.getStats();
    let port = 0;
    stats.forEach((s) => {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
      const pair = stats.get(s.selectedCandidatePairId);
      port = stats.get(pair?.localCandidateId)?.port ?? 0;
    });
    return port;
  });
}
