// Nothing leaves the machine, wherever the page is hosted: the page carries its own
// Content-Security-Policy (a <meta> in index.html; `cargo xtask serve` sends the same as a
// header, plus frame-ancestors), and every request made while loading, training, exporting
// and reloading stays on the page's origin, from the project's server and from a plain
// static server that sends no security headers (started here). The policy is in force from
// the meta alone: an injected inline script, an inline handler, eval and a request to
// another origin are refused (securitypolicyviolation). No eval or new Function in the
// page's code, the wasm bindings included. WebGPU on and off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, openApp, status, BASE_URL } from './browser.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const INDEX = fs.readFileSync(path.join(ROOT, 'index.html'), 'utf8');
const META = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(INDEX);

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.md': 'text/plain; charset=utf-8', '.tsv': 'text/plain; charset=utf-8',
  '.gz': 'application/gzip',
};

// A plain static server of the repository (as a university web space or GitHub Pages
// would serve it): correct MIME types, no Content-Security-Policy or other headers.
function staticServer() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const rel = decodeURIComponent(url.pathname) === '/' ? 'index.html' : decodeURIComponent(url.pathname).slice(1);
    const file = path.resolve(ROOT, rel);
    if (!file.startsWith(ROOT + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': MIME[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let plain;
before(async () => { plain = await staticServer(); });
after(() => new Promise((r) => plain.close(r)));

test('the policy lives in index.html and the served header agrees', async () => {
  assert.ok(META, 'index.html has a <meta http-equiv="Content-Security-Policy">');
  const policy = META[1];
  const directives = policy.split(';').map((d) => d.trim());
  for (const d of ["default-src 'self'", "connect-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self' blob:", "object-src 'none'", "base-uri 'none'"]) {
    assert.ok(directives.includes(d), `${d} is in the policy`);
  }
  assert.doesNotMatch(policy, /'unsafe-inline'|'unsafe-eval'|https?:|\*/, 'no inline script, no eval, no other origin');
  // The meta comes before anything it governs.
  assert.ok(INDEX.indexOf(META[0]) < INDEX.search(/<(script|link)\b/), 'the meta comes first');
  const r = await fetch(BASE_URL);
  assert.equal(r.headers.get('content-security-policy'), `${policy}; frame-ancestors 'none'`);
  // No inline script, no inline handlers or styles, no third-party URLs in the page.
  for (const tag of INDEX.match(/<script\b[^>]*>/g)) assert.match(tag, /\bsrc="www\//, tag);
  assert.doesNotMatch(INDEX, /<script\b[^>]*>[^<\s]/, 'inline script');
  assert.doesNotMatch(INDEX, /\son[a-z]+=/i, 'inline event handler');
  assert.doesNotMatch(INDEX, /\sstyle=/i, 'inline style');
  assert.doesNotMatch(INDEX, /(src|href)="(https?:)?\/\//, 'a third-party URL');
});

test('no eval, new Function or HTML from strings in the page’s code (the wasm bindings too)', () => {
  const files = fs.readdirSync(path.join(ROOT, 'www')).filter((f) => f.endsWith('.js')).map((f) => path.join(ROOT, 'www', f));
  files.push(path.join(ROOT, 'www/pkg/cellvae.js'));
  const banned = [
    [/(?<![\w.$])eval\s*\(/, 'eval('],
    [/\bnew\s+Function\b/, 'new Function'],
    [/(?<![\w.$`])Function\s*\(/, 'Function('],
    [/\bset(Timeout|Interval)\s*\(\s*['"`]/, 'a timer with a string'],
    [/\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|createContextualFragment|srcdoc/, 'HTML from a string'],
  ];
  const found = [];
  for (const f of files) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const [re, what] of banned) if (re.test(line)) found.push(`${path.relative(ROOT, f)}:${i + 1}: ${what}: ${line.trim()}`);
    });
  }
  assert.ok(files.length > 20, `${files.length} files scanned`);
  assert.deepEqual(found, []);
});

// Records every securitypolicyviolation on the page, from its first script on.
const RECORD_VIOLATIONS = () => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample });
  });
};

async function download(page, testid) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="${testid}"]`)]);
  return fs.readFileSync(await dl.path());
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';
  for (const server of ['xtask serve', 'a plain static server']) {
    test(`nothing leaves the machine: ${server} (${mode})`, async (t) => {
      const base = server === 'xtask serve' ? BASE_URL : `http://127.0.0.1:${plain.address().port}/`;
      const origin = new URL(base).origin;
      const b = await launch(webgpu);
      try {
        const { page } = b;
        await page.addInitScript(RECORD_VIOLATIONS);
        const response = await page.goto(base);
        await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
        const header = response.headers()['content-security-policy'];
        if (server === 'xtask serve') assert.equal(header, `${META[1]}; frame-ancestors 'none'`);
        else assert.equal(header, undefined, 'the plain server sends no policy');
        assert.equal(await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content'), META[1]);

        await t.test('load, train, export and reload: every request stays on the page’s origin', async () => {
          await page.click('[data-testid="demo-button"]');
          await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
          await page.selectOption('[data-testid="steps-per-frame"]', '10');
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => window.cellvae.status().epoch >= 2, null, { timeout: 120_000 });
          await page.click('[data-testid="train-toggle"]');
          await page.waitForFunction(() => !window.cellvae.status().training);
          assert.match((await download(page, 'export-latent')).toString('utf8'), /^cell_id,z1,z2\n/);
          assert.ok((await download(page, 'export-model-weights')).length > 1000);
          await download(page, 'export-model-config');
          await page.waitForFunction(() => { const s = window.cellvae.status(); return s.kept.state === 'saved' && s.kept.step === s.step; });
          const epoch = (await status(page)).epoch;
          await page.reload();
          await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
          assert.equal((await status(page)).epoch, epoch, 'the session came back');
          await page.click('[data-testid="train-step"]');
          await page.waitForFunction((e) => window.cellvae.status().step > 0 && !window.cellvae.status().training, epoch);
          const foreign = b.requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
          assert.deepEqual(foreign, []);
          // The workers' requests are recorded too (the engine's modules load in the worker).
          if ((await status(page)).thread === 'worker') assert.ok(b.requests.some((u) => u.endsWith('/www/engine.js')), 'worker requests recorded');
          assert.ok(b.requests.some((u) => u.endsWith('/www/pkg/cellvae_bg.wasm')));
          assert.deepEqual(await page.evaluate(() => window.__violations), [], 'the page itself breaks no rule of its policy');
        });

        await t.test('the policy is in force: inline script, inline handlers, eval and other origins are refused', async () => {
          const r = await page.evaluate(async () => {
            const out = {};
            const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = 1';
            document.head.append(s);
            const img = document.createElement('div');
            img.setAttribute('onclick', 'window.__handlerRan = 1');
            document.body.append(img);
            img.click();
            img.remove();
            // A string timer is compiled by the page itself when it fires (code run through
            // Playwright's evaluate is exempt from the eval rule, so eval is not tried here).
            setTimeout('window.__timerRan = 1', 0);
            try { await fetch('https://example.com/collect', { mode: 'no-cors' }); out.fetch = 'sent'; } catch (e) { out.fetch = e.name; }
            await new Promise((res) => setTimeout(res, 200));
            out.inline = window.__inlineRan;
            out.timer = window.__timerRan;
            out.handler = window.__handlerRan;
            out.violations = window.__violations.map((v) => v.directive);
            out.blocked = window.__violations.map((v) => v.blocked);
            return out;
          });
          assert.equal(r.inline, undefined, 'an injected inline script ran');
          assert.equal(r.handler, undefined, 'an inline handler ran');
          assert.equal(r.timer, undefined, 'a string was compiled as code');
          assert.ok(r.blocked.includes('eval'), `eval blocked: ${r.blocked}`);
          assert.ok(r.blocked.some((u) => u.startsWith('https://example.com')), `the other origin blocked: ${r.blocked}`);
          assert.equal(r.fetch, 'TypeError', 'a request to another origin was not refused');
          for (const d of ['script-src-elem', 'script-src-attr', 'script-src', 'connect-src']) assert.ok(r.violations.includes(d), `${d} violation in ${r.violations}`);
        });

        assert.deepEqual(b.consoleErrors.filter((e) => !/favicon|Content Security Policy|Refused to|Failed to fetch|EvalError|unsafe-eval/.test(e)), [], 'console errors');
      } finally {
        await b.close();
      }
    });
  }
}
