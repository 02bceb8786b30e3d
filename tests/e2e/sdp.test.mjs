// The SFU's SDP in a real browser (tests/unit/sdp/accept.mjs): Chromium must accept kaiwa's answer to each kind of
// offer it makes (audio+video, ICE restart, simulcast, screen share, data channel, a viewer, a refused m-line) and
// answer kaiwa's subscriber offer. Needs sdp_tool beside the server binary (built with the unit tests); Firefox is
// checked by hand (`node tests/unit/sdp/accept.mjs`), to keep this file at a few seconds.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.mjs';
import { acceptChecks } from '../unit/sdp/accept.mjs';

const bin = process.env.KAIWA_BIN || join(ROOT, 'build', 'kaiwa');
const toolPath = process.env.SDP_TOOL || join(dirname(bin), 'sdp_tool');

test('Chromium accepts the SFU answers and offer from src/sdp', { timeout: 120_000, skip: !existsSync(toolPath) && `no ${toolPath}` },
  async () => {
    const lines = [];
    const { passed, failed } = await acceptChecks({ firefox: false, toolPath, log: (l) => lines.push(l) });
    assert.equal(failed, 0, lines.join('\n'));
    assert.equal(passed, 8, lines.join('\n'));
  });
