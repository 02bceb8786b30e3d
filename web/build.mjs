#!/usr/bin/env node
// Builds the web app and the browser SDK.
//
//   node web/build.mjs [--outdir DIR] [--check] [--watch]
//
// Output (the layout the server relies on):
//   DIR/index.html          the single page for "/" and "/room/<name>" (asset URLs are absolute)
//   DIR/assets/app.js       the app bundle (ES module)
//   DIR/assets/app.css
//   DIR/sdk/kaiwa.js        the SDK as a standalone ES module
//   DIR/sdk/kaiwa.d.ts      its type declarations (+ DIR/sdk/types/*.d.ts)
//   DIR/sdk/react.js        optional React hooks (React is an external import)
// --check runs the TypeScript checker first and fails on any error.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const webDir = dirname(fileURLToPath(import.meta.url));
const rootDir = dirname(webDir);

function parseArgs(argv) {
  const opts = { outdir: join(webDir, 'dist'), check: false, watch: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--outdir') opts.outdir = resolve(argv[++i] ?? fail('--outdir needs a directory'));
    else if (a.startsWith('--outdir=')) opts.outdir = resolve(a.slice('--outdir='.length));
    else if (a === '--check') opts.check = true;
    else if (a === '--watch') opts.watch = true;
    else if (a === '--help' || a === '-h') {
      console.log('usage: node web/build.mjs [--outdir DIR] [--check] [--watch]');
      process.exit(0);
    } else fail(`unknown argument: ${a}`);
  }
  return opts;
}

function fail(msg) {
  console.error(`build.mjs: ${msg}`);
  process.exit(2);
}

function tscPath() {
  const p = join(rootDir, 'node_modules', '.bin', 'tsc');
  return existsSync(p) ? p : null;
}

function typecheck() {
  const tsc = tscPath();
  if (!tsc) fail('typescript is not installed (run npm ci at the repository root)');
  const r = spawnSync(tsc, ['-p', join(webDir, 'tsconfig.json'), '--noEmit'], { stdio: 'inherit' });
  if (r.status !== 0) fail('type errors');
  console.log('build.mjs: typecheck ok');
}

/** Emits the SDK's declarations into outdir/sdk/types and a kaiwa.d.ts entry that re-exports them. */
function declarations(outdir) {
  const tsc = tscPath();
  if (!tsc) {
    console.warn('build.mjs: typescript not installed; skipping kaiwa.d.ts');
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'kaiwa-dts-'));
  try {
    const r = spawnSync(tsc, [
      '--declaration', '--emitDeclarationOnly', '--outDir', tmp, '--rootDir', join(webDir, 'sdk'),
      '--target', 'ES2022', '--module', 'ESNext', '--moduleResolution', 'Bundler', '--lib', 'ES2022,DOM,DOM.Iterable',
      '--strict', '--skipLibCheck', '--types', '',
      join(webDir, 'sdk', 'index.ts'),
    ], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.warn(`build.mjs: declaration emit failed; skipping kaiwa.d.ts\n${r.stdout}${r.stderr}`);
      return;
    }
    const typesDir = join(outdir, 'sdk', 'types');
    rmSync(typesDir, { recursive: true, force: true });
    mkdirSync(typesDir, { recursive: true });
    for (const f of readdirSync(tmp)) if (f.endsWith('.d.ts')) copyFileSync(join(tmp, f), join(typesDir, f));
    writeFileSync(join(outdir, 'sdk', 'kaiwa.d.ts'), "export * from './types/index.js';\n");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function build(opts) {
  const { outdir } = opts;
  mkdirSync(join(outdir, 'assets'), { recursive: true });
  mkdirSync(join(outdir, 'sdk'), { recursive: true });
  const common = {
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome100', 'firefox100', 'safari16'],
    sourcemap: 'linked',
    minify: true,
    logLevel: 'warning',
    legalComments: 'none',
  };
  const builds = [
    { ...common, entryPoints: { app: join(webDir, 'app', 'main.ts') }, outdir: join(outdir, 'assets') },
    { ...common, entryPoints: { app: join(webDir, 'app', 'style.css') }, outdir: join(outdir, 'assets') },
    { ...common, entryPoints: { kaiwa: join(webDir, 'sdk', 'index.ts') }, outdir: join(outdir, 'sdk'), minify: false },
  ];
  if (existsSync(join(webDir, 'sdk', 'react.ts'))) {
    builds.push({ ...common, entryPoints: { react: join(webDir, 'sdk', 'react.ts') }, outdir: join(outdir, 'sdk'),
      minify: false, external: ['react'] });
  }
  if (opts.watch) {
    for (const b of builds) await (await esbuild.context(b)).watch();
  } else {
    await Promise.all(builds.map((b) => esbuild.build(b)));
  }
  cpSync(join(webDir, 'app', 'index.html'), join(outdir, 'index.html'));
  cpSync(join(webDir, 'app', 'favicon.svg'), join(outdir, 'favicon.svg'));
  declarations(outdir);
  console.log(`build.mjs: web app and SDK built into ${outdir}`);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.check) typecheck();
await build(opts);
