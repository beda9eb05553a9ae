// Nothing lost on reload: the data, the settings, the run (checkpoint + run record) and its
// history are kept in this browser (IndexedDB, written by the engine) and come back after a
// reload and after a browser restart (the same profile directory); training after a reload
// is what training without one computes (compared with a second browser that trains the
// same steps straight); "Forget everything" deletes them (a reload then shows the landing
// page); a full storage is said and training goes on; damaged, foreign or older-version
// entries are discarded with a note or read as they can be. WebGPU on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, openApp, status, screenshotPath } from './browser.mjs';

const ready = (page) => page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });

// Reloads the page and waits until it (and any restore) is done.
async function reload(page) {
  await page.reload();
  await ready(page);
}

// Every cell's latent mean as the map shows it.
function latents(page) {
  return page.evaluate(() => Array.from({ length: window.cellvae.status().n_cells }, (_, c) => window.cellvae.latentOf(c)));
}

// Waits until the engine has kept the model as it is now (the same step).
async function waitKept(page) {
  await page.waitForFunction(() => {
    const s = window.cellvae.status();
    return s.kept.state === 'saved' && s.kept.step === s.step && !s.training;
  }, null, { timeout: 30_000 });
}

// What the page's IndexedDB holds (the store's keys).
function keptKeys(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const r = indexedDB.open('cellvae');
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains('kept')) { db.close(); resolve([]); return; }
      const q = db.transaction('kept').objectStore('kept').getAllKeys();
      q.onsuccess = () => { db.close(); resolve(q.result); };
      q.onerror = () => reject(q.error);
    };
  }));
}

// Which of the model entry's fields hold the run: ['checkpoint', 'run'] (this version)
// or ['safetensors'] (an earlier one).
function keptModelFields(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const r = indexedDB.open('cellvae');
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const db = r.result;
      const q = db.transaction('kept').objectStore('kept').get('model');
      q.onsuccess = () => { db.close(); resolve(['checkpoint', 'run', 'safetensors'].filter((k) => q.result && k in q.result)); };
      q.onerror = () => reject(q.error);
    };
  }));
}

// Changes one kept entry in place, as named (the CSP forbids eval, so the changes are
// written out here).
function tamper(page, key, kind) {
  return page.evaluate(([k, how]) => new Promise((resolve, reject) => {
    const change = {
      'truncate-model': (m) => ({ ...m, checkpoint: m.checkpoint.slice(0, 40) }),
      'flip-checkpoint': (m) => { const c = m.checkpoint.slice(); c[c.length >> 1] ^= 16; return { ...m, checkpoint: c }; },
      // As an earlier version of the page kept a model: parameters (a checkpoint holds
      // them under the same names) and a history, no run record.
      'older-version': (m) => { const { checkpoint, run, ...rest } = m; return { ...rest, safetensors: checkpoint, history: JSON.parse(run).schedule.history }; },
      'other-data': (m) => ({ ...m, dataId: 'someone-else' }),
      // The data is kept as a Blob (www/read.js keptBlob): bytes 8 to 64 overwritten.
      'damage-bytes': (d) => ({ ...d, bytes: new Blob([d.bytes.slice(0, 8), new Uint8Array(56).fill(7), d.bytes.slice(64)]) }),
      'foreign-data': () => ({ hello: 'world', bytes: '<script>window.pwned=1</script>' }),
      'bad-settings': () => ({ format: 'cellvae-kept-1', savedAt: 1, form: { 'opt-seed': { toString: 1 } } }),
    }[how];
    const r = indexedDB.open('cellvae');
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const db = r.result;
      const tx = db.transaction('kept', 'readwrite');
      const store = tx.objectStore('kept');
      const g = store.get(k);
      g.onsuccess = () => store.put(change(g.result), k);
      tx.oncomplete = () => { db.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }), [key, kind]);
}

function assertSameLatents(got, want, tol = 1e-4) {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let c = 0; c < want.length; c++) {
    for (let j = 0; j < want[c].length; j++) worst = Math.max(worst, Math.abs(got[c][j] - want[c][j]));
  }
  assert.ok(worst <= tol, `latent means differ by up to ${worst}`);
}

// Presses "1 step" `n` times, each after the last one's step is shown.
async function stepTimes(page, n) {
  for (let i = 0; i < n; i++) {
    const want = (await status(page)).step + 1;
    await page.click('[data-testid="train-step"]');
    await page.waitForFunction((w) => { const s = window.cellvae.status(); return s.step === w && !s.training; }, want, { timeout: 30_000 });
  }
}

// The demo loaded with the learning rate the tests set.
async function demoAt(page, lr) {
  await page.click('[data-testid="demo-button"]');
  await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
  await page.fill('[data-testid="lr"]', lr);
  await page.dispatchEvent('[data-testid="lr"]', 'change');
  await page.waitForFunction((x) => Math.abs(window.cellvae.status().settings.lr - Number(x)) < 1e-8, lr);
}

// History rows without their wall-clock seconds.
const rows = (h) => h.map(({ seconds, ...r }) => r);

async function trainTo(page, epochs) {
  await page.click('[data-testid="train-toggle"]');
  await page.waitForFunction((e) => window.cellvae.status().epoch >= e, epochs, { timeout: 120_000 });
  await page.click('[data-testid="train-toggle"]');
  await page.waitForFunction(() => !window.cellvae.status().training);
  await waitKept(page);
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`kept in this browser (${mode})`, async (t) => {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cellvae-kept-profile-'));
    let b = await launch(webgpu, { profile });
    let before = null;
    try {
      await openApp(b.page);
      assert.equal(await b.page.getAttribute('body', 'data-layout'), 'landing');

      await t.test('a reload brings back the cells, the latent map, the history and the settings', async () => {
        const page = b.page;
        await demoAt(page, '0.002');
        await page.selectOption('[data-testid="steps-per-frame"]', '10');
        await trainTo(page, 3);
        const s = await status(page);
        before = { status: s, latents: await latents(page) };
        assert.ok(s.history.length >= 3, `history: ${s.history.length} rows`);
        await reload(page);
        const r = await status(page);
        assert.equal(r.n_cells, 700);
        assert.equal(r.n_genes, s.n_genes);
        assert.equal(r.total_counts, s.total_counts);
        assert.equal(r.epoch, s.epoch);
        assert.equal(r.step, s.step);
        assert.deepEqual(r.history, s.history);
        assert.deepEqual(r.model, s.model);
        assert.ok(Math.abs(r.settings.lr - 0.002) < 1e-8, `the learning rate set before the reload: ${r.settings.lr}`);
        assert.equal(await page.inputValue('[data-testid="lr"]'), '0.002');
        assert.equal(await page.inputValue('[data-testid="steps-per-frame"]'), '10');
        assertSameLatents(await latents(page), before.latents);
        assert.equal(await page.getAttribute('body', 'data-layout'), 'workspace');
        const note = await page.textContent('[data-testid="restored-note"]');
        assert.match(note, new RegExp(`^Restored your session from .+: 700 cells \\(the demo \\(700 PBMCs\\)\\), epoch ${s.epoch}\\.$`));
        assert.match(await page.textContent('[data-testid="train-status"]'), /Restored your session/);
        // The curves are drawn from the restored history.
        assert.equal((await page.isHidden('[data-testid="restore-note"]')), true);
        await page.screenshot({ path: screenshotPath(`restored-${mode}.png`) });
      });

      await t.test('training after the reload is what training without one computes', async (st) => {
        const page = b.page;
        const k = 3;
        const at = (await status(page)).step;
        assert.equal(at, before.status.step);
        st.diagnostic(`reloaded at step ${at} (epoch ${before.status.epoch}, ${at - 6 * before.status.epoch} steps into the next); ${k} single steps after`);
        await stepTimes(page, k);
        const got = await status(page);
        assert.equal(got.step, at + k);
        // A second browser (a fresh profile) trains the same steps straight.
        const fresh = await launch(webgpu);
        try {
          await openApp(fresh.page);
          await demoAt(fresh.page, '0.002');
          await stepTimes(fresh.page, at + k);
          const want = await status(fresh.page);
          assert.equal(got.epoch, want.epoch);
          assert.deepEqual(rows(got.history), rows(want.history));
          assert.ok(Math.abs(got.elbo - want.elbo) <= 1e-5, `ELBO ${got.elbo} after the reload, ${want.elbo} straight`);
          assert.equal(got.settings.lr, want.settings.lr);
          assertSameLatents(await latents(page), await latents(fresh.page), 1e-5);
          assert.deepEqual(fresh.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
        } finally {
          await fresh.close();
        }
        await waitKept(page);
      });

      await t.test('training goes on from the restored model, its epochs counted on', async () => {
        const page = b.page;
        const e0 = (await status(page)).epoch;
        await trainTo(page, e0 + 2);
        const s = await status(page);
        assert.ok(s.epoch >= e0 + 2);
        assert.deepEqual(s.history.slice(0, before.status.history.length), before.status.history);
        assert.deepEqual(s.history.map((h) => h.epoch), s.history.map((_, i) => before.status.history[0].epoch + i), 'epochs in order, none missing');
        for (const h of s.history) assert.ok(Number.isFinite(h.elbo), `epoch ${h.epoch}: ELBO ${h.elbo}`);
        before = { status: s, latents: await latents(page) };
      });

      await t.test('a browser restart (the same profile) brings it back too', async () => {
        await b.close();
        b = await launch(webgpu, { profile });
        const page = b.page;
        await openApp(page);
        const r = await status(page);
        assert.equal(r.n_cells, 700);
        assert.equal(r.epoch, before.status.epoch);
        assert.equal(r.step, before.status.step);
        assert.deepEqual(r.history, before.status.history);
        assertSameLatents(await latents(page), before.latents);
        assert.match(await page.textContent('[data-testid="restored-note"]'), new RegExp(`700 cells .*epoch ${r.epoch}\\.$`));
      });

      await t.test('Forget everything deletes it all: a reload shows the landing page', async () => {
        const page = b.page;
        assert.ok(await page.isVisible('[data-testid="forget-button"]'), 'Forget everything is on screen');
        await Promise.all([page.waitForEvent('load'), page.click('[data-testid="forget-button"]')]);
        await ready(page);
        assert.equal(await page.getAttribute('body', 'data-layout'), 'landing');
        assert.equal((await status(page)).n_cells, 0);
        assert.deepEqual(await keptKeys(page), []);
        await reload(page);
        assert.equal(await page.getAttribute('body', 'data-layout'), 'landing');
        assert.equal((await status(page)).n_cells, 0);
        assert.equal(await page.textContent('[data-testid="restored-note"]'), '');
        assert.equal(await page.inputValue('[data-testid="lr"]'), '0.001', 'the settings are forgotten too');
        await page.screenshot({ path: screenshotPath(`forgotten-${mode}.png`) });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
      fs.rmSync(profile, { recursive: true, force: true });
    }
  });

  test(`a full storage is said and training goes on (${mode})`, async () => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await openApp(page);
      await page.evaluate(() => window.cellvae.testStorageFull());
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      await page.selectOption('[data-testid="steps-per-frame"]', '10');
      await page.waitForFunction(() => window.cellvae.status().kept.state === 'full', null, { timeout: 30_000 });
      const note = await page.textContent('[data-testid="kept-note"]');
      assert.match(note, /storage for this page is full/);
      assert.match(note, /The page works as before/);
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => window.cellvae.status().epoch >= 3, null, { timeout: 120_000 });
      const s = await status(page);
      assert.equal(s.run, 'training', 'training goes on');
      assert.equal(await page.isHidden('[data-testid="train-error"]'), true);
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => !window.cellvae.status().training);
      assert.equal((await status(page)).kept.state, 'full');
      await page.locator('section.kept').screenshot({ path: screenshotPath(`storage-full-${mode}.png`) });
      // Nothing was kept: a reload starts afresh.
      await reload(page);
      assert.equal(await page.getAttribute('body', 'data-layout'), 'landing');
      assert.equal((await status(page)).n_cells, 0);
      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });

  test(`damaged or foreign entries are discarded with a note (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await openApp(page);
      await page.click('[data-testid="demo-button"]');
      await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      await page.click('[data-testid="train-step"]');
      await page.waitForFunction(() => window.cellvae.status().step === 1);
      await waitKept(page);

      await t.test('a damaged model: the data comes back with a new model', async () => {
        await tamper(page, 'model', 'truncate-model');
        await reload(page);
        const s = await status(page);
        assert.equal(s.n_cells, 700);
        assert.equal(s.step, 0, 'a new model');
        assert.match(await page.textContent('[data-testid="restore-note"]'), /The model kept in this browser could not be loaded .*: it was discarded/);
        assert.equal(await page.isVisible('[data-testid="restore-note"]'), true);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1);
        await waitKept(page);
      });

      await t.test('a checkpoint with one bit changed: refused, a new model', async () => {
        await tamper(page, 'model', 'flip-checkpoint');
        await reload(page);
        assert.equal((await status(page)).step, 0, 'a new model');
        assert.match(await page.textContent('[data-testid="restore-note"]'), /could not be loaded .*checkpoint\.safetensors.*damaged.*: it was discarded/);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1);
        await waitKept(page);
      });

      await t.test('a model kept by an earlier version of the page: its parameters come back', async () => {
        const want = await latents(page);
        await tamper(page, 'model', 'older-version');
        await reload(page);
        const s = await status(page);
        assert.equal(s.n_cells, 700);
        assert.equal(s.step, 0, 'counted afresh');
        assertSameLatents(await latents(page), want, 1e-6);
        assert.match(await page.textContent('[data-testid="restore-note"]'), /kept by an earlier version of the page/);
        await page.click('[data-testid="train-step"]');
        await page.waitForFunction(() => window.cellvae.status().step === 1);
        await waitKept(page);
        assert.deepEqual(await keptModelFields(page), ['checkpoint', 'run'], 'kept again as this version keeps it');
      });

      await t.test('a model of other data: discarded', async () => {
        await tamper(page, 'model', 'other-data');
        await reload(page);
        assert.equal((await status(page)).step, 0);
        assert.match(await page.textContent('[data-testid="restore-note"]'), /not for this data: it was discarded/);
        await waitKept(page);
      });

      await t.test('damaged data bytes: discarded, the landing page, the demo loads', async () => {
        await tamper(page, 'data', 'damage-bytes');
        await reload(page);
        assert.equal((await status(page)).n_cells, 0);
        assert.equal(await page.getAttribute('body', 'data-layout'), 'landing');
        assert.match(await page.textContent('[data-testid="restore-note"]'), /The data kept in this browser could not be read back .*: it was discarded/);
        assert.deepEqual((await keptKeys(page)).filter((k) => k !== 'settings'), []);
        await page.click('[data-testid="demo-button"]');
        await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
        await waitKept(page);
      });

      await t.test('a foreign entry: discarded', async () => {
        await tamper(page, 'data', 'foreign-data');
        await tamper(page, 'settings', 'bad-settings');
        await reload(page);
        assert.equal((await status(page)).n_cells, 0);
        const note = await page.textContent('[data-testid="restore-note"]');
        assert.match(note, /The data kept in this browser was damaged or not this page’s: it was discarded/);
        assert.match(note, /The settings kept in this browser were damaged/);
        assert.deepEqual(await keptKeys(page), []);
        assert.equal(await page.evaluate(() => window.pwned), undefined);
        await page.click('[data-testid="demo-button"]');
        await page.waitForFunction(() => window.cellvae.status().n_cells === 700, null, { timeout: 60_000 });
      });

      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}
