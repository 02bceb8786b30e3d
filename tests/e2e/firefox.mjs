// A small WebDriver BiDi client for Debian's firefox-esr, for the end-to-end tests.
//
// playwright-core's `firefox` launcher wants Playwright's patched (Juggler) Firefox, so we start firefox-esr
// ourselves — headless, fresh profile, fake camera and microphone, ICE on loopback — and speak WebDriver BiDi to
// its Remote Agent. A page offers the subset of Playwright's Page that helpers.mjs uses (evaluate,
// waitForFunction, $eval), so waitForRemoteVideo, waitForMediaFlow, recordEvents… work on it unchanged.
//
// Environment: FIREFOX_BIN (default /usr/bin/firefox-esr), E2E_DEBUG=1 (print Firefox's output and page console).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DEBUG = process.env.E2E_DEBUG === '1';
export const FIREFOX_BIN = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';
/** WebDriver key codes for Page.type(). */
const SPECIAL_KEYS = { Enter: '\uE007', Tab: '\uE004', Backspace: '\uE003', Escape: '\uE00C' };
/** Bound on a single BiDi command (ms). */
const COMMAND_TIMEOUT = 15_000;

// Node 22 has a global WebSocket; Node 20 only with --experimental-websocket, so fall back to the `ws` bundled
// with playwright-core (same addEventListener API).
const WS = globalThis.WebSocket ?? (await import('playwright-core/lib/utilsBundle')).ws;

const PREFS = {
  // Media: fake camera and microphone, no permission prompt, autoplay with sound (like Chromium's
  // --autoplay-policy=no-user-gesture-required), and keep decoding video in windows that are not in front.
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  // Count the fake devices as real capture. Without it Firefox treats the page as not capturing and gathers only
  // the default route's address ("default address only" mode): on a machine with nothing but loopback, no
  // candidates at all.
  'media.navigator.permission.fake': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'media.suspend-bkgnd-video.enabled': false,
  // ICE: gather on the loopback interface and show host addresses instead of mDNS .local names.
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.no_host': false,
  // No first-run pages, default-browser check, updates, telemetry or background network chatter.
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.startup.page': 0,
  'browser.aboutwelcome.enabled': false,
  'startup.homepage_welcome_url': 'about:blank',
  'startup.homepage_welcome_url.additional': '',
  'trailhead.firstrun.didSeeAboutWelcome': true,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
  'app.update.auto': false,
  'app.update.disabledForTesting': true,
  'app.normandy.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'extensions.update.enabled': false,
  'browser.tabs.warnOnClose': false,
};

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Starts headless firefox-esr with a fresh profile and opens a WebDriver BiDi session.
 * Throws a clear error when Firefox is not installed.
 * @param {{ prefs?: Record<string, unknown>, timeout?: number }} [opts]
 */
export async function launchFirefox(opts = {}) {
  if (!existsSync(FIREFOX_BIN)) {
    throw new Error(`Firefox not found at ${FIREFOX_BIN}: install it (apt-get install firefox-esr, or ` +
      'bash scripts/install-deps.sh), or set FIREFOX_BIN');
  }
  const profile = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'kaiwa-firefox-'));
  const prefs = { ...PREFS, ...opts.prefs };
  writeFileSync(join(profile, 'user.js'),
    Object.entries(prefs).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});\n`).join(''));
  // Its own process group, so close() can end Firefox's content processes along with it.
  const proc = spawn(FIREFOX_BIN, ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port=0',
    '--window-size=1100,760', 'about:blank'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' } });
  const ff = new Firefox(proc, profile);
  try {
    const url = await withTimeout(ff.bidiUrl, opts.timeout ?? 30_000, 'Firefox start (WebDriver BiDi listening)');
    await ff.connect(`${url}/session`);
    // The first session waits for Firefox's start-up work (profile, remote settings): slow on a busy machine.
    await ff.send('session.new', { capabilities: { alwaysMatch: { acceptInsecureCerts: true } } }, 60_000);
    await ff.send('session.subscribe', { events: ['log.entryAdded'] });
    return ff;
  } catch (err) {
    await ff.close();
    throw new Error(`${err.message}\n${ff.output().slice(-3000)}`);
  }
}

class Firefox {
  constructor(proc, profile) {
    this.proc = proc;
    this.profile = profile;
    this.nextId = 1;
    this.pending = new Map(); // command id → {resolve, reject}
    this.pages = new Map(); // browsing context id → Page
    this.logs = [];
    this.exited = new Promise((r) => proc.on('exit', (code, signal) => {
      this.exitStatus = { code, signal };
      for (const p of this.pending.values()) p.reject(new Error(`Firefox exited (${code ?? signal})`));
      this.pending.clear();
      r();
    }));
    this.bidiUrl = new Promise((resolve, reject) => {
      const keep = (chunk) => {
        const text = chunk.toString();
        if (DEBUG) process.stderr.write(`[firefox] ${text}`);
        this.logs.push(text);
        if (this.logs.length > 300) this.logs.shift();
        const m = /WebDriver BiDi listening on (ws:\/\/\S+)/.exec(this.logs.join(''));
        if (m) resolve(m[1]);
      };
      proc.stdout.on('data', keep);
      proc.stderr.on('data', keep);
      proc.on('error', reject);
      this.exited.then(() => reject(new Error(`Firefox exited before WebDriver BiDi came up ${JSON.stringify(this.exitStatus)}`)));
    });
    this.bidiUrl.catch(() => undefined);
    this.killOnExit = () => this.kill();
    process.on('exit', this.killOnExit);
  }

  /** Firefox's recent stdout/stderr. */
  output() {
    return this.logs.join('');
  }

  connect(url) {
    return withTimeout(new Promise((resolve, reject) => {
      const ws = new WS(url);
      ws.addEventListener('open', () => { this.ws = ws; resolve(); });
      ws.addEventListener('error', (e) => reject(new Error(`WebDriver BiDi connection to ${url} failed: ${e.message ?? e.type}`)));
      ws.addEventListener('close', () => {
        for (const p of this.pending.values()) p.reject(new Error('WebDriver BiDi connection closed'));
        this.pending.clear();
      });
      ws.addEventListener('message', (e) => this.onMessage(String(e.data)));
    }), 10_000, 'WebDriver BiDi connect');
  }

  onMessage(text) {
    const msg = JSON.parse(text);
    if (msg.id !== undefined) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.type === 'error') p.reject(new Error(`${p.method}: ${msg.error}: ${msg.message}`));
      else p.resolve(msg.result);
    } else if (msg.method === 'log.entryAdded') {
      const page = this.pages.get(msg.params.source?.context);
      page?.onLog(msg.params);
    }
  }

  /** Sends one BiDi command and waits (bounded) for its result. */
  send(method, params = {}, timeout = COMMAND_TIMEOUT) {
    if (!this.ws || this.ws.readyState !== 1) return Promise.reject(new Error(`${method}: not connected to Firefox`));
    const id = this.nextId++;
    const answer = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, method }));
    this.ws.send(JSON.stringify({ id, method, params }));
    return withTimeout(answer, timeout, method).finally(() => this.pending.delete(id));
  }

  /**
   * Opens a new window in its own user context (separate cookies and storage, like a Playwright context).
   * @param {{ name?: string }} [opts] name prefixes the page's console output with E2E_DEBUG=1
   */
  async newPage(opts = {}) {
    const { userContext } = await this.send('browser.createUserContext', {});
    const { context } = await this.send('browsingContext.create', { type: 'window', userContext });
    const page = new Page(this, context, userContext, opts.name ?? context);
    this.pages.set(context, page);
    return page;
  }

  /** Signals the process group made at spawn: Firefox and its content processes, nothing else. */
  kill(signal = 'SIGKILL') {
    try {
      process.kill(-this.proc.pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** Ends the session, stops Firefox (politely, then by force) and removes the profile. Never throws. */
  async close() {
    if (this.ws && this.ws.readyState === 1) {
      await this.send('browser.close', {}, 5000).catch(() => undefined);
    }
    this.ws?.close();
    if (!this.exitStatus) {
      this.kill('SIGTERM');
      await withTimeout(this.exited, 5000, 'Firefox exit').catch(() => {
        this.kill('SIGKILL');
        return withTimeout(this.exited, 5000, 'Firefox exit after SIGKILL').catch(() => undefined);
      });
    }
    this.kill('SIGKILL'); // content processes left in the group, if any
    process.off('exit', this.killOnExit);
    rmSync(this.profile, { recursive: true, force: true });
  }
}

class Page {
  constructor(ff, context, userContext, name) {
    this.ff = ff;
    this.context = context;
    this.userContext = userContext;
    this.name = name;
    /** Uncaught exceptions and console errors, as Playwright's pageerror/console 'error' would give. */
    this.errors = [];
  }

  onLog(entry) {
    if (DEBUG) process.stderr.write(`[${this.name}] ${entry.type}/${entry.level}: ${entry.text}\n`);
    if (entry.level === 'error') this.errors.push(entry.text);
  }

  /** Navigates and waits for the load event. */
  async goto(url, timeout = 20_000) {
    await this.ff.send('browsingContext.navigate', { context: this.context, url, wait: 'complete' }, timeout);
  }

  /**
   * Runs `fn(arg)` in the page (awaiting a returned promise) and returns its result, JSON round-tripped.
   * Same shape as Playwright's page.evaluate(fn, arg).
   */
  evaluate(fn, arg, timeout = COMMAND_TIMEOUT) {
    return this.call(`(${fn})(a)`, arg, timeout);
  }

  /** Evaluates the expression `body`, in which `a` is `arg`; the function source stays ours (no eval in page). */
  async call(body, arg, timeout) {
    const res = await this.ff.send('script.callFunction', {
      functionDeclaration: `async (json) => { const a = JSON.parse(json); const r = await ${body}; ` +
        'return r === undefined ? "null" : JSON.stringify(r); }',
      arguments: [{ type: 'string', value: JSON.stringify(arg ?? null) }],
      target: { context: this.context },
      awaitPromise: true,
      resultOwnership: 'none',
    }, timeout);
    if (res.type === 'exception') {
      const d = res.exceptionDetails;
      throw new Error(`[${this.name}] evaluate threw: ${d.text}\n${(d.stackTrace?.callFrames ?? [])
        .map((f) => `    at ${f.functionName || '<anonymous>'} (${f.url}:${f.lineNumber + 1})`).join('\n')}`);
    }
    return JSON.parse(res.result.value);
  }

  /** Polls `fn(arg)` until it returns something truthy; bounded by `timeout` (ms). Like Playwright's. */
  async waitForFunction(fn, arg, { timeout = 20_000, polling = 100 } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      const left = deadline - Date.now();
      try {
        last = await this.evaluate(fn, arg, Math.max(1000, Math.min(left, COMMAND_TIMEOUT)));
        if (last) return last;
      } catch (err) {
        last = err.message;
        if (/not connected|exited|closed/.test(last)) throw err;
      }
      if (Date.now() + polling > deadline) {
        throw new Error(`[${this.name}] waitForFunction timed out after ${timeout} ms (last: ${JSON.stringify(last)}): ${fn}`);
      }
      await new Promise((r) => setTimeout(r, polling));
    }
  }

  /** `fn(element, arg)` for the first element matching `selector`; throws if there is none. */
  $eval(selector, fn, arg) {
    return this.call(`((el) => { if (!el) throw new Error('no element matches ' + ${JSON.stringify(selector)}); ` +
      `return (${fn})(el, a); })(document.querySelector(${JSON.stringify(selector)}))`, arg, COMMAND_TIMEOUT);
  }

  /** Types `text` as real key presses into the focused element; `Enter`, `Tab`… name a special key. */
  async type(text) {
    const keys = SPECIAL_KEYS[text] ? [SPECIAL_KEYS[text]] : [...text];
    await this.ff.send('input.performActions', {
      context: this.context,
      actions: [{ type: 'key', id: 'keyboard', actions: keys.flatMap((k) => [{ type: 'keyDown', value: k }, { type: 'keyUp', value: k }]) }],
    });
  }

  async close() {
    await this.ff.send('browsingContext.close', { context: this.context }, 5000).catch(() => undefined);
    await this.ff.send('browser.removeUserContext', { userContext: this.userContext }, 5000).catch(() => undefined);
    this.ff.pages.delete(this.context);
  }
}
