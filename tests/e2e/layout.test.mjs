// The map-first layout: a landing before data; after loading, on a desktop window
// (1400x900, 1280x720) the latent map fills most of the window with no page scroll, the
// training controls stay in the top bar, panels around the map collapse and expand, and
// the map's drawing buffer follows its CSS size (www/layout.js); on a phone-sized window
// (390x844) the map comes first at full width with the panels under it. Everything is
// reachable with Tab. WebGPU on and off; a screenshot per layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';

// Geometry of the page and the map, in CSS pixels.
function measure(page) {
  return page.evaluate((sel) => {
    const map = document.querySelector(sel);
    const r = map.getBoundingClientRect();
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    // The largest element that is not the map or one of its ancestors (visible part only).
    let largest = { area: 0, what: '' };
    for (const e of document.body.querySelectorAll('*')) {
      if (e === map || e.contains(map)) continue;
      const b = e.getBoundingClientRect();
      const w = Math.max(0, Math.min(b.right, innerWidth) - Math.max(b.left, 0));
      const h = Math.max(0, Math.min(b.bottom, innerHeight) - Math.max(b.top, 0));
      if (w * h > largest.area) largest = { area: w * h, what: `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}.${e.className}` };
    }
    return {
      innerWidth, innerHeight,
      scrollHeight: document.documentElement.scrollHeight,
      scrollWidth: document.documentElement.scrollWidth,
      map: { x: r.x, y: r.y, width: r.width, height: r.height },
      buffer: { width: map.width, height: map.height },
      expected: { width: Math.round(r.width * ratio), height: Math.round(r.height * ratio) },
      largest,
      stage: document.body.dataset.layout,
    };
  }, MAP);
}

// Waits until layout.js has matched the map's buffer to its CSS box.
function bufferSettled(page) {
  return page.waitForFunction((sel) => {
    const c = document.querySelector(sel);
    const r = c.getBoundingClientRect();
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    return r.width > 0 && Math.abs(c.width - Math.round(r.width * ratio)) <= 1 && Math.abs(c.height - Math.round(r.height * ratio)) <= 1;
  }, MAP, { timeout: 10_000 });
}

// A few training steps, so the map is drawn at its current size.
async function trainAMoment(page) {
  const s0 = await status(page);
  await page.click('[data-testid="train-toggle"]');
  await page.waitForFunction((n) => window.cellvae.status().step >= n + 4, s0.step, { timeout: 90_000 });
  await page.click('[data-testid="train-toggle"]');
  await page.waitForFunction(() => !window.cellvae.status().training);
}

function rect(page, selector) {
  return page.evaluate((s) => {
    const e = document.querySelector(s);
    if (!e) return null;
    const b = e.getBoundingClientRect();
    return { x: b.x, y: b.y, width: b.width, height: b.height, right: b.right, bottom: b.bottom };
  }, selector);
}

const overlap = (a, b) => a.x < b.right - 0.5 && b.x < a.right - 0.5 && a.y < b.bottom - 0.5 && b.y < a.bottom - 0.5;

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`layout (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1400, height: 900 });
      // Count the layout events the page receives.
      await page.addInitScript(() => {
        window.__layoutEvents = 0;
        window.addEventListener('cellvae:layout', () => { window.__layoutEvents++; });
      });
      await openApp(page);

      await t.test('before data: a landing with title, purpose, privacy note and the load card', async () => {
        const m = await measure(page);
        assert.equal(m.stage, 'landing');
        for (const sel of ['h1', '.tagline', '.privacy', '[data-testid="demo-button"]', '[data-testid="drop-zone"]', '[data-testid="backend"]']) {
          assert.equal(await page.isVisible(sel), true, `${sel} is not shown on the landing`);
        }
        assert.match(await page.textContent('[data-testid="demo-button"]'), /Load the demo/);
        assert.match(await page.textContent('.privacy'), /never uploaded/);
        assert.equal(await page.isVisible(MAP), false, 'the empty map shows before data');
        assert.ok(m.scrollHeight <= m.innerHeight + 1, `the landing scrolls: ${m.scrollHeight}`);
        await page.screenshot({ path: screenshotPath(`layout-landing-1400x900-${mode}.png`) });
      });

      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      await page.waitForSelector('body[data-layout="workspace"]');
      await bufferSettled(page);

      for (const [width, height] of [[1400, 900], [1280, 720]]) {
        await t.test(`${width}x${height}: the map fills the window, no page scroll, controls on screen`, async () => {
          await page.setViewportSize({ width, height });
          await bufferSettled(page);
          await trainAMoment(page);
          const m = await measure(page);
          assert.equal(m.stage, 'workspace');
          assert.ok(m.scrollHeight <= m.innerHeight + 1, `the page scrolls: ${m.scrollHeight} > ${m.innerHeight}`);
          assert.ok(m.scrollWidth <= m.innerWidth + 1, `the page scrolls sideways: ${m.scrollWidth} > ${m.innerWidth}`);
          const share = (m.map.width * m.map.height) / (m.innerWidth * m.innerHeight);
          assert.ok(share >= 0.5, `the map covers ${(100 * share).toFixed(1)}% of the window`);
          assert.ok(m.map.x >= 0 && m.map.y >= 0 && m.map.x + m.map.width <= m.innerWidth && m.map.y + m.map.height <= m.innerHeight, `map off screen: ${JSON.stringify(m.map)}`);
          assert.ok(m.largest.area < m.map.width * m.map.height, `${m.largest.what} (${m.largest.area}) is larger than the map`);
          // layout.js: the drawing buffer is the CSS box (times the capped pixel ratio).
          assert.ok(Math.abs(m.buffer.width - m.expected.width) <= 1 && Math.abs(m.buffer.height - m.expected.height) <= 1,
            `buffer ${JSON.stringify(m.buffer)} for a box of ${JSON.stringify(m.expected)}`);
          // The training controls and the status line are in view and nothing in the top
          // bar overlaps or runs off the window.
          const parts = {};
          for (const sel of ['.brand', '[data-testid="train-toggle"]', '[data-testid="train-step"]', '[data-testid="train-reset"]', '[data-testid="train-status"]', '[data-testid="backend"]']) {
            const r = await rect(page, sel);
            assert.ok(r.width > 0 && r.x >= 0 && r.y >= 0 && r.right <= m.innerWidth + 0.5 && r.bottom <= m.innerHeight, `${sel} is not on screen: ${JSON.stringify(r)}`);
            parts[sel] = r;
          }
          assert.match(await page.textContent('[data-testid="train-status"]'), /epoch \d+ · step \d+/);
          const names = Object.keys(parts);
          for (let i = 0; i < names.length; i++) {
            for (let j = i + 1; j < names.length; j++) {
              assert.ok(!overlap(parts[names[i]], parts[names[j]]), `${names[i]} overlaps ${names[j]}`);
            }
          }
          // The docks sit beside the map, not over it.
          for (const sel of ['.dock-left', '.dock-right', '.topbar']) {
            assert.ok(!overlap(await rect(page, sel), { ...m.map, right: m.map.x + m.map.width, bottom: m.map.y + m.map.height }), `${sel} overlaps the map`);
          }
          await page.screenshot({ path: screenshotPath(`layout-${width}x${height}-${mode}.png`) });
        });
      }

      await t.test('panels collapse and expand; the map grows when a dock collapses', async () => {
        await page.setViewportSize({ width: 1400, height: 900 });
        await bufferSettled(page);
        // A panel: its content goes and comes back; the map stays where it was.
        const before = await measure(page);
        await page.click('.panel-probe > summary');
        assert.equal(await page.isVisible('[data-testid="probe-profile"]'), false);
        assert.equal(await page.getAttribute('.panel-probe', 'open'), null);
        const closed = await measure(page);
        assert.deepEqual(closed.map, before.map, 'closing a panel moved the map');
        await page.click('.panel-probe > summary');
        assert.equal(await page.isVisible('[data-testid="probe-batch"]'), true);
        // The settings panel starts closed and opens.
        assert.equal(await page.isVisible('[data-testid="opt-n-latent"]'), false);
        await page.click('[data-testid="settings"] summary');
        assert.equal(await page.isVisible('[data-testid="opt-n-latent"]'), true);
        await page.click('[data-testid="settings"] summary');
        // A whole dock: the map widens, its buffer follows and the page hears of it.
        const events = await page.evaluate(() => window.__layoutEvents);
        await page.click('.dock-right .dock-summary');
        await bufferSettled(page);
        const wide = await measure(page);
        assert.ok(wide.map.width > before.map.width + 200, `the map did not grow: ${before.map.width} -> ${wide.map.width}`);
        assert.equal(wide.buffer.width, wide.expected.width);
        assert.ok(await page.evaluate(() => window.__layoutEvents) > events, 'no cellvae:layout event after the map grew');
        assert.ok(wide.scrollHeight <= wide.innerHeight + 1 && wide.scrollWidth <= wide.innerWidth + 1, 'the page scrolls with a dock closed');
        await page.click('.dock-left .dock-summary');
        await bufferSettled(page);
        const wider = await measure(page);
        assert.ok(wider.map.width > wide.map.width + 150, `the map did not grow: ${wide.map.width} -> ${wider.map.width}`);
        await trainAMoment(page);
        await page.screenshot({ path: screenshotPath(`layout-1400x900-docks-closed-${mode}.png`) });
        await page.click('.dock-left .dock-summary');
        await page.click('.dock-right .dock-summary');
        await bufferSettled(page);
        assert.deepEqual((await measure(page)).map, before.map, 'the map is not back to its size with both docks open');
      });

      await t.test('an error in a closed or scrolled panel opens it and comes into view', async () => {
        await page.evaluate(() => { document.querySelector('.dock-left .dock-box').scrollTop = 0; });
        await page.click('.panel-data > summary');
        assert.equal(await page.getAttribute('.panel-data', 'open'), null);
        const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
        await page.setInputFiles('[data-testid="file-input"]', { name: 'picture.h5ad', mimeType: 'application/octet-stream', buffer: png });
        await page.waitForSelector('[data-testid="error"]:not([hidden])');
        assert.equal(await page.getAttribute('.panel-data', 'open'), '', 'the Data panel did not open for its error');
        await page.waitForFunction(() => {
          const e = document.querySelector('[data-testid="error"]').getBoundingClientRect();
          const dock = document.querySelector('.dock-left .dock-box').getBoundingClientRect();
          return e.height > 0 && e.top >= dock.top && e.bottom <= dock.bottom;
        }, null, { timeout: 5_000 });
        assert.equal((await status(page)).n_cells, 700, 'the demo must still be loaded');
        const m = await measure(page);
        assert.ok(m.scrollHeight <= m.innerHeight + 1, 'the page scrolls after the error');
        // One step redraws the map (cleared when the docks reopened) for the screenshot.
        const step = (await status(page)).step;
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction((n) => window.cellvae.status().step === n + 1, step, { timeout: 60_000 });
        await page.screenshot({ path: screenshotPath(`layout-1400x900-error-${mode}.png`) });
      });

      await t.test('keyboard: Tab from the top reaches Train, the map and every panel', async () => {
        // Start from the top: a click on the title (not focusable) sets where Tab starts.
        await page.click('.brand h1');
        const wanted = await page.$$eval('details.panel > summary, .dock-summary', (els) => els.map((e) => e.parentElement.className));
        const seen = [];
        let train = -1, map = -1;
        const summaries = new Set();
        for (let i = 0; i < 250 && (train < 0 || map < 0 || summaries.size < wanted.length); i++) {
          await page.keyboard.press('Tab');
          const f = await page.evaluate(() => {
            const e = document.activeElement;
            if (!e || e === document.body) return null;
            const style = getComputedStyle(e);
            return {
              id: e.id, tag: e.tagName.toLowerCase(),
              summaryOf: e.tagName === 'SUMMARY' ? e.parentElement.className : null,
              outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
            };
          });
          if (!f) continue;
          seen.push(f.id || f.summaryOf || f.tag);
          if (f.id === 'train-toggle' && train < 0) train = i;
          if (f.id === 'latent-map' && map < 0) {
            map = i;
            assert.equal(f.outline, true, 'the focused map shows no focus ring');
            await page.screenshot({ path: screenshotPath(`layout-1400x900-map-focused-${mode}.png`) });
          }
          if (f.summaryOf) {
            summaries.add(f.summaryOf);
            assert.equal(f.outline, true, `the focused summary of ${f.summaryOf} shows no focus ring`);
          }
        }
        assert.ok(train >= 0, `Tab never reached Train: ${seen.join(' ')}`);
        assert.ok(map > train, `Tab reached the map at ${map}, Train at ${train}: ${seen.join(' ')}`);
        assert.equal(summaries.size, wanted.length, `summaries reached: ${[...summaries].join(', ')} of ${wanted.join(', ')}`);
        // Enter on a focused summary toggles its panel.
        await page.focus('.panel-charts > summary');
        await page.keyboard.press('Enter');
        assert.equal(await page.getAttribute('.panel-charts', 'open'), null);
        await page.keyboard.press('Enter');
        assert.equal(await page.getAttribute('.panel-charts', 'open'), '');
      });

      await t.test('390x844: the map first at full width, the panels under it', async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await bufferSettled(page);
        await trainAMoment(page);
        const m = await measure(page);
        assert.ok(m.map.width >= 0.9 * m.innerWidth, `the map is ${m.map.width} of ${m.innerWidth} wide`);
        assert.ok(m.map.height >= 300, `the map is ${m.map.height} tall`);
        assert.ok(m.scrollWidth <= m.innerWidth + 1, `the page scrolls sideways: ${m.scrollWidth}`);
        assert.equal(m.buffer.width, m.expected.width);
        const mapBottom = m.map.y + m.map.height;
        for (const sel of ['.dock-left', '.dock-right', '.panel-data', '.panel-probe']) {
          const r = await rect(page, sel);
          assert.ok(r.y >= mapBottom - 0.5, `${sel} (y ${r.y}) is not under the map (bottom ${mapBottom})`);
        }
        const train = await rect(page, '[data-testid="train-toggle"]');
        assert.ok(train.bottom <= m.map.y + 0.5, 'Train is not above the map');
        await page.screenshot({ path: screenshotPath(`layout-390x844-${mode}.png`) });
        await page.screenshot({ path: screenshotPath(`layout-390x844-full-${mode}.png`), fullPage: true });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
