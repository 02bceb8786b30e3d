// The web app on two nodes of a cluster (docs/cluster.md): two people, each loading the app from another node, see
// each other's video, once in a mesh room (signaling relayed between the nodes, media between the pages) and once in
// an SFU room (both pages' media at the room's owner, whose media port the candidates name, whichever node the page
// came from).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { metric } from '../integration/client.mjs';
import { cluster, sfuArgs, skip } from '../integration/cluster.mjs';
import { WAIT, countPeerConnections, launchBrowser, openPeer, uniqueRoom, waitForMediaFlow, waitForRemoteVideo }
  from './helpers.mjs';

/** The remote port of each page's connected candidate pairs (the pages' peer connections, countPeerConnections). */
async function remotePorts(page) {
  return page.evaluate(async () => {
    const ports = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState !== 'connected') continue;
      const stats = [...(await pc.getStats()).values()];
      for (const pair of stats.filter((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded')) {
        ports.push(stats.find((s) => s.id === pair.remoteCandidateId)?.port);
      }
    }
    return ports;
  });
}

describe('the web app on two nodes', { skip }, () => {
  const cleanups = [];
  let nodes;
  const mediaPorts = [];
  let browser;

  before(async () => {
    const env = await cluster({ after: (fn) => cleanups.push(fn) }, 2, async () => {
      const args = await sfuArgs();
      mediaPorts.push(Number(args[1].split(':')[1]));
      return args;
    });
    nodes = env.nodes;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    for (const f of cleanups) await f();
  });

  test('a mesh room: Ann on n1 and Ben on n2 see each other', { timeout: 90_000 }, async () => {
    const [n1, n2] = nodes;
    const room = uniqueRoom('mesh');
    const ann = await openPeer(browser, n1, room, 'Ann');
    const ben = await openPeer(browser, n2, room, 'Ben');
    try {
      assert.equal(await metric(n2, 'kaiwa_cluster_links'), 1, 'Ben reaches the room on n1 through a link');
      await waitForRemoteVideo(ann.page, ben.id);
      await waitForRemoteVideo(ben.page, ann.id);
      await waitForMediaFlow(ben.page, ann.id);
      assert.equal(await ann.page.evaluate(() => window.kaiwa.room.mediaMode), 'mesh');
      assert.deepEqual([...ann.errors, ...ben.errors], []);
    } finally {
      await ann.close();
      await ben.close();
    }
  });

  test('an SFU room: Ann on n2 and Ben on n1 see each other through the owner\'s media port', { timeout: 90_000 },
    async () => {
      const [n1, n2] = nodes;
      const room = uniqueRoom('sfu');
      const opts = { query: 'media=sfu', initScript: countPeerConnections };
      const ann = await openPeer(browser, n2, room, 'Ann', opts);  // the room lives on n2
      const ben = await openPeer(browser, n1, room, 'Ben', opts);
      try {
        assert.equal(await ben.page.evaluate(() => window.kaiwa.room.mediaMode), 'sfu');
        await waitForRemoteVideo(ann.page, ben.id, WAIT * 2);
        await waitForRemoteVideo(ben.page, ann.id, WAIT * 2);
        await waitForMediaFlow(ben.page, ann.id);
        // Both pages' connections are to n2's media port, none to n1's.
        for (const p of [ann, ben]) {
          const ports = await remotePorts(p.page);
          assert.ok(ports.length >= 1, `${p.name}: ${ports}`);
          assert.deepEqual([...new Set(ports)], [mediaPorts[1]], `${p.name}: ${ports} (n2's is ${mediaPorts[1]})`);
        }
        assert.equal(await metric(n1, 'kaiwa_sfu_transports'), 0);
        assert.ok(await metric(n2, 'kaiwa_sfu_transports') >= 3);
        assert.deepEqual([...ann.errors, ...ben.errors], []);
      } finally {
        await ann.close();
        await ben.close();
      }
    });
});
