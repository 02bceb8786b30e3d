#!/usr/bin/env node
// `npm run test:e2e [-- NODE_TEST_OPTIONS...]`: runs this directory's *.test.mjs one file at a time with node's test
// runner. Extra arguments are passed to `node --test` as options (e.g. --test-reporter=tap,
// --test-name-pattern=screen), which `node --test DIR --option` would instead take for file names.
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), `${dir}/`],
  { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
