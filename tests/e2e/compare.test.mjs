// Comparing cells (issue 14): a lasso and a box drawn with the mouse on the map select
// the cells inside them, a legend click selects the cells of a metadata value, the probe's
// latent neighbourhood selects its nearest cells; named groups are made, renamed and
// deleted; the comparison runs in the engine (worker, and on the page with ?thread=page)
// and shows a volcano plot and a table (one entry per gene; search, sort), exports
// result.csv exactly, and a gene chosen in the table or the plot colours the map and is
// pinned in the probe's profile; an empty group says so and the page stays usable; the
// groups come back after a reload; with a batch column, decode as every batch or one.
// WebGPU on and off; screenshots at 1400x900.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, openApp, status, screenshotPath, BASE_URL } from './browser.mjs';

const MAP = '[data-testid="latent-map"]';
const HEADER = 'gene_id,gene_name,lfc_mean,lfc_std,lfc_min,lfc_max,proba_de,proba_not_de,bayes_factor,is_de_fdr,'
  + 'scale1,scale2,raw_mean1,raw_mean2,non_zeros_proportion1,non_zeros_proportion2';
const here = path.dirname(fileURLToPath(import.meta.url));
const CELLS_TSV = path.join(here, '../../www/demo/pbmc68k_reduced_700/cells.tsv');

const mapData = (page) => page.evaluate((sel) => document.querySelector(sel).toDataURL(), MAP);

// The demo's cell types, counted from its metadata table.
function cellTypeCounts() {
  const lines = fs.readFileSync(CELLS_TSV, 'utf8').split('\n').filter(Boolean);
  const col = lines[0].split('\t').indexOf('cell_type');
  const counts = new Map();
  for (const l of lines.slice(1)) {
    const v = l.split('\t')[col];
    counts.set(v, (counts.get(v) || 0) + 1);
  }
  return counts;
}

// Page coordinates of every cell on the map.
async function cellPoints(page) {
  const box = await page.locator(MAP).boundingBox();
  const fr = await page.evaluate(() => {
    const n = window.cellvae.status().n_cells;
    return Array.from({ length: n }, (_, c) => window.cellvae.cellPosition(c));
  });
  return { box, points: fr.map(([fx, fy]) => [box.x + fx * box.width, box.y + fy * box.height]) };
}

function inside(poly, x, y) {
  let ins = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) ins = !ins;
  }
  return ins;
}

// Drags the mouse through `poly` (page coordinates) with the left button.
async function drag(page, poly) {
  await page.mouse.move(poly[0][0], poly[0][1]);
  await page.mouse.down();
  for (const [x, y] of poly.slice(1)) await page.mouse.move(x, y, { steps: 3 });
  await page.mouse.up();
}

async function loadDemo(page) {
  await page.click('[data-testid="demo-button"]');
  await page.waitForFunction(() => window.cellvae.status().n_cells === 700 && window.cellvae.status().n_latent > 0, null, { timeout: 60_000 });
}

// Runs the comparison the form shows and waits for its end.
async function runCompare(page) {
  await page.click('[data-testid="cmp-run"]');
  await page.waitForFunction(() => !window.cellvae.comparison().running, null, { timeout: 120_000 });
  return page.evaluate(() => window.cellvae.comparison());
}

for (const webgpu of [true, false]) {
  const mode = webgpu ? 'webgpu' : 'no-webgpu';

  test(`compare cells (${mode})`, async (t) => {
    const b = await launch(webgpu);
    try {
      const { page } = b;
      await page.setViewportSize({ width: 1400, height: 900 });
      await openApp(page);
      await loadDemo(page);
      // Enough training that the map has structure and groups differ.
      await page.selectOption('[data-testid="steps-per-frame"]', '10');
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => window.cellvae.status().epoch >= 6, null, { timeout: 120_000 });
      await page.click('[data-testid="train-toggle"]');
      await page.waitForFunction(() => !window.cellvae.status().training);
      const nGenes = (await page.evaluate(() => window.cellvae.modelGenes())).length;

      await t.test('a lasso and a box select exactly the cells inside them; groups are made from them', async () => {
        const { box, points } = await cellPoints(page);
        // Lasso: an octagon around cell 0; box: around the cell farthest from it.
        const [ax, ay] = points[0];
        let far = 0;
        points.forEach(([x, y], c) => { if (Math.hypot(x - ax, y - ay) > Math.hypot(points[far][0] - ax, points[far][1] - ay)) far = c; });
        const r = Math.min(box.width, box.height) * 0.12;
        const clampX = (x) => Math.max(box.x + 2, Math.min(box.x + box.width - 2, x));
        const clampY = (y) => Math.max(box.y + 40, Math.min(box.y + box.height - 2, y));
        const lasso = Array.from({ length: 8 }, (_, k) => [clampX(ax + r * Math.cos((k * Math.PI) / 4)), clampY(ay + r * Math.sin((k * Math.PI) / 4))]);
        await page.click('[data-testid="tool-lasso"]');
        assert.equal((await status(page)).tool, 'lasso');
        const probeBefore = (await status(page)).probe;
        await drag(page, lasso);
        const want1 = points.map((p, c) => (inside(lasso, p[0], p[1]) ? c : -1)).filter((c) => c >= 0);
        const got1 = await page.evaluate(() => window.cellvae.selection());
        assert.ok(want1.length > 0, 'the lasso holds no cell');
        assert.deepEqual(got1, want1, 'the lasso selected other cells than those inside it');
        assert.deepEqual((await status(page)).probe, probeBefore, 'the lasso moved the probe');
        assert.match(await page.textContent('[data-testid="selection-note"]'), new RegExp(`Selected: ${want1.length} cells \\(lasso\\)`));
        await page.fill('[data-testid="group-name"]', 'near cell 0');
        await page.click('[data-testid="group-make"]');

        const [bx, by] = points[far];
        const h = Math.min(box.width, box.height) * 0.1;
        const corners = [[clampX(bx - h), clampY(by - h)], [clampX(bx + h), clampY(by + h)]];
        await page.click('[data-testid="tool-box"]');
        await drag(page, corners);
        const [[x0, y0], [x1, y1]] = corners;
        const want2 = points.map(([x, y], c) => (x >= x0 && x <= x1 && y >= y0 && y <= y1 ? c : -1)).filter((c) => c >= 0);
        const got2 = await page.evaluate(() => window.cellvae.selection());
        assert.ok(want2.length > 0, 'the box holds no cell');
        assert.deepEqual(got2, want2, 'the box selected other cells than those inside it');
        await page.click('[data-testid="group-make"]');
        // Keys on the map choose the tool; Escape drops a lasso being drawn.
        await page.focus(MAP);
        await page.keyboard.press('l');
        assert.equal((await status(page)).tool, 'lasso');
        await page.mouse.move(lasso[0][0], lasso[0][1]);
        await page.mouse.down();
        await page.mouse.move(lasso[2][0], lasso[2][1], { steps: 3 });
        await page.keyboard.press('Escape');
        await page.mouse.move(lasso[4][0], lasso[4][1], { steps: 3 });
        await page.mouse.up();
        assert.equal((await status(page)).selected, 0, 'a cancelled lasso selected cells');
        await page.keyboard.press('p');
        assert.equal((await status(page)).tool, 'probe');
        const groups = await page.evaluate(() => window.cellvae.groups());
        assert.deepEqual(groups.map((g) => [g.name, g.count]), [['near cell 0', want1.length], ['group 2', want2.length]]);
        assert.deepEqual(groups[0].cells, want1);
        assert.equal(await page.locator('[data-testid="groups"] li[data-group]').count(), 2);
        assert.match(await page.textContent('[data-testid="groups"]'), new RegExp(`${want1.length} cells`));
        // Rename the second group.
        await page.locator('[data-testid="groups"] li[data-group] .group-name').nth(1).fill('far away');
        await page.locator('[data-testid="groups"] li[data-group] .group-name').nth(1).dispatchEvent('change');
        assert.equal((await page.evaluate(() => window.cellvae.groups()))[1].name, 'far away');
        // Outlines: hiding the groups changes the map.
        const shown = await mapData(page);
        await page.locator('[data-testid="groups"] li[data-group] input[type="checkbox"]').first().uncheck();
        assert.notEqual(await mapData(page), shown, 'hiding a group did not change the map');
        await page.locator('[data-testid="groups"] li[data-group] input[type="checkbox"]').first().check();
        await page.click('[data-testid="tool-probe"]');
      });

      await t.test('a legend click selects exactly the cells of that cell type', async () => {
        assert.equal((await status(page)).colour_by, 'obs:cell_type');
        const counts = cellTypeCounts();
        for (const type of ['CD14+ Monocyte', 'CD19+ B']) {
          await page.locator('[data-testid="legend"] li[data-level]', { hasText: type }).first().click();
          assert.equal((await status(page)).selected, counts.get(type), `${type}: selected ${(await status(page)).selected}`);
          assert.match(await page.textContent('[data-testid="selection-note"]'), new RegExp(`Selected: ${counts.get(type)} cells \\(cell_type = ${type.replace('+', '\\+')}\\)`));
        }
        // Ctrl-click adds the cells of another value.
        await page.locator('[data-testid="legend"] li[data-level]', { hasText: 'CD14+ Monocyte' }).first().click({ modifiers: ['Control'] });
        assert.equal((await status(page)).selected, counts.get('CD19+ B') + counts.get('CD14+ Monocyte'));
        // A third group from the legend, then deleted.
        await page.click('[data-testid="group-make"]');
        assert.equal((await page.evaluate(() => window.cellvae.groups())).length, 3);
        await page.locator('[data-testid="groups"] li[data-group] .group-delete').nth(2).click();
        assert.deepEqual((await page.evaluate(() => window.cellvae.groups())).map((g) => g.name), ['near cell 0', 'far away']);
      });

      await t.test('the probe\'s nearest cells in the latent space', async () => {
        const box = await page.locator(MAP).boundingBox();
        await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.5);
        await page.waitForFunction(() => window.cellvae.status().probe_ready);
        await page.fill('[data-testid="near-k"]', '30');
        await page.click('[data-testid="select-near"]');
        const got = await page.evaluate(() => window.cellvae.selection());
        const want = await page.evaluate(() => {
          const z = window.cellvae.status().probe;
          const n = window.cellvae.status().n_cells;
          const d = Array.from({ length: n }, (_, c) => window.cellvae.latentOf(c).reduce((s, v, j) => s + (v - z[j]) ** 2, 0));
          return Array.from({ length: n }, (_, c) => c).sort((a, b) => d[a] - d[b]).slice(0, 30).sort((a, b) => a - b);
        });
        assert.deepEqual(got, want);
        await page.click('[data-testid="selection-clear"]');
        assert.equal((await status(page)).selected, 0);
      });

      await t.test('compare two groups: volcano, table, search, sort, CSV export', async () => {
        await page.selectOption('[data-testid="cmp-group1"]', 'g:1');
        await page.selectOption('[data-testid="cmp-group2"]', 'g:2');
        await page.fill('[data-testid="cmp-samples"]', '1000');
        const groups = await page.evaluate(() => window.cellvae.groups());
        const c = await runCompare(page);
        assert.equal(c.error, null);
        assert.ok(c.result, 'no comparison shown');
        assert.equal(c.result.n_genes, nGenes, 'one row per modelled gene');
        assert.equal(c.result.n_cells1, groups[0].count);
        assert.equal(c.result.n_cells2, groups[1].count);
        assert.equal(c.result.options.n_samples, 1000);
        assert.equal(c.volcano_points, nGenes, 'a volcano point per gene');
        assert.equal(c.volcano_called, c.result.n_de);
        assert.equal(c.table_rows, Math.min(200, nGenes));
        assert.ok(await page.locator('[data-testid="volcano"]').isVisible());
        const probs = c.result.genes.map((g) => g.proba_de);
        assert.ok(probs.every((p, i) => i === 0 || probs[i - 1] >= p), 'not sorted by P(DE)');
        assert.ok(c.result.n_de > 0, `no gene called between two distant groups (${c.result.n_de})`);
        assert.match(await page.textContent('[data-testid="cmp-summary"]'), new RegExp(`near cell 0 \\(${groups[0].count} cells\\) vs far away`));
        // The table's first rows are the result's, in order.
        const firstRows = await page.$$eval('[data-testid="cmp-table"] tbody tr td:first-child', (tds) => tds.slice(0, 5).map((td) => td.textContent));
        assert.deepEqual(firstRows, c.result.genes.slice(0, 5).map((g) => g.name));
        // Search by gene name.
        const target = c.result.genes[7].name;
        await page.fill('[data-testid="cmp-search"]', target);
        const found = await page.$$eval('[data-testid="cmp-table"] tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
        assert.ok(found.includes(target) && found.every((g) => g.toLowerCase().includes(target.toLowerCase())), `search ${target}: ${found}`);
        await page.fill('[data-testid="cmp-search"]', '');
        // Sort by LFC (descending, then ascending).
        await page.click('[data-testid="cmp-table"] button[data-sort="lfc_mean"]');
        const lfcs = c.result.genes.map((g) => g.lfc_mean).sort((a, b) => b - a);
        const byName = new Map(c.result.genes.map((g) => [g.name, g.lfc_mean]));
        let shownNames = await page.$$eval('[data-testid="cmp-table"] tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
        assert.equal(byName.get(shownNames[0]), lfcs[0]);
        await page.click('[data-testid="cmp-table"] button[data-sort="lfc_mean"]');
        shownNames = await page.$$eval('[data-testid="cmp-table"] tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
        assert.equal(byName.get(shownNames[0]), lfcs[lfcs.length - 1]);
        await page.click('[data-testid="cmp-table"] button[data-sort="proba_de"]');
        // Export: result.csv, the CLI's header, one row per gene.
        const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="cmp-export"]')]);
        assert.equal(dl.suggestedFilename(), 'result.csv');
        const text = fs.readFileSync(await dl.path(), 'utf8');
        const lines = text.trim().split('\n');
        assert.equal(lines[0], HEADER);
        assert.equal(lines.length, nGenes + 1);
        assert.equal(lines[1].split(',')[1], c.result.genes[0].name);
        await page.screenshot({ path: screenshotPath(`compare-${mode}.png`) });
        await page.locator('[data-testid="cmp-results"]').screenshot({ path: screenshotPath(`compare-results-${mode}.png`) });
      });

      await t.test('a gene chosen in the table or the volcano colours the map and is pinned', async () => {
        const c = await page.evaluate(() => window.cellvae.comparison());
        const before = await mapData(page);
        const g0 = c.result.genes[0].name;
        await page.locator('[data-testid="cmp-table"] tbody tr').first().click();
        await page.waitForFunction((g) => window.cellvae.status().colour_by === `gene:${g}`, g0);
        assert.notEqual(await mapData(page), before, 'the map did not change colour');
        assert.ok((await status(page)).pins.includes(g0), 'the gene is not pinned');
        await page.waitForSelector(`[data-testid="pinned-profile"] li[data-gene="${g0}"]`);
        // The gene with the largest change, clicked on the volcano plot.
        const big = [...c.result.genes].sort((a, b) => Math.abs(b.lfc_mean) - Math.abs(a.lfc_mean))[0];
        const [fx, fy] = await page.evaluate((n) => window.cellvae.volcanoPoint(n), big.name);
        const vb = await page.locator('[data-testid="volcano"]').boundingBox();
        await page.mouse.click(vb.x + fx * vb.width, vb.y + fy * vb.height);
        await page.waitForFunction(() => window.cellvae.comparison().chosen >= 0 && window.cellvae.status().colour_by !== 'obs:cell_type');
        const chosen = await page.evaluate(() => window.cellvae.comparison().chosen);
        const name = c.result.genes.find((g) => g.gene === chosen).name;
        assert.equal(name, big.name);
        await page.waitForFunction((g) => window.cellvae.status().colour_by === `gene:${g}`, name);
        await page.screenshot({ path: screenshotPath(`compare-gene-${mode}.png`) });
      });

      await t.test('an empty group: the error line, and the page stays usable', async () => {
        if (await page.locator('[data-testid="selection-clear"]').isEnabled()) await page.click('[data-testid="selection-clear"]');
        assert.equal((await status(page)).selected, 0);
        await page.selectOption('[data-testid="cmp-group1"]', 'sel');
        const c = await runCompare(page);
        assert.match(c.error || '', /group 1 has no cells/);
        await page.waitForSelector('[data-testid="cmp-error"]:visible');
        assert.match(await page.textContent('[data-testid="cmp-error"]'), /group 1 has no cells: select some first/);
        assert.ok(!(await page.locator('[data-testid="cmp-run"]').isDisabled()), 'Run stays disabled after an error');
        // The probe still works, and a valid comparison runs again and clears the error.
        const box = await page.locator(MAP).boundingBox();
        await page.mouse.click(box.x + box.width * 0.4, box.y + box.height * 0.6);
        await page.waitForFunction(() => window.cellvae.status().probe_ready);
        await page.selectOption('[data-testid="cmp-group1"]', 'g:1');
        await page.selectOption('[data-testid="cmp-group2"]', 'rest');
        await page.fill('[data-testid="cmp-samples"]', '300');
        const again = await runCompare(page);
        assert.equal(again.error, null);
        assert.equal(again.result.n_cells2, 700 - again.result.n_cells1);
        assert.ok(await page.locator('[data-testid="cmp-error"]').isHidden());
      });

      await t.test('the groups are kept with the session: a reload brings them back', async () => {
        const before = await page.evaluate(() => window.cellvae.groups());
        await page.waitForFunction(() => window.cellvae.status().kept.state === 'saved', null, { timeout: 30_000 });
        await page.reload();
        await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
        assert.ok((await status(page)).restored, 'the session was not restored');
        const after = await page.evaluate(() => window.cellvae.groups());
        assert.deepEqual(after, before);
        assert.equal(await page.locator('[data-testid="groups"] li[data-group]').count(), before.length);
        // The next group gets a new id and colour.
        await page.evaluate(() => window.cellvae.selectCells([1, 2, 3]));
        const id = await page.evaluate(() => window.cellvae.makeGroup('three'));
        assert.ok(!before.some((g) => g.id === id), `id ${id} reused`);
        await page.screenshot({ path: screenshotPath(`compare-restored-${mode}.png`) });
      });

      await t.test('a damaged groups entry is discarded with a note; the session comes back', async () => {
        // Once the third group is kept: a cell position beyond the data's cells, written
        // straight into IndexedDB.
        await page.waitForFunction(() => new Promise((resolve) => {
          const open = indexedDB.open('cellvae');
          open.onerror = () => resolve(false);
          open.onsuccess = () => {
            const get = open.result.transaction('kept', 'readonly').objectStore('kept').get('groups');
            get.onsuccess = () => { open.result.close(); resolve(!!get.result && get.result.groups.length === 3); };
            get.onerror = () => { open.result.close(); resolve(false); };
          };
        }), null, { timeout: 30_000 });
        await page.evaluate(() => new Promise((resolve, reject) => {
          const open = indexedDB.open('cellvae');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const tx = open.result.transaction('kept', 'readwrite');
            const store = tx.objectStore('kept');
            const get = store.get('groups');
            get.onsuccess = () => {
              const entry = get.result;
              entry.groups[0].cells = Uint32Array.from([5, 700000]);
              store.put(entry, 'groups');
            };
            tx.oncomplete = () => { open.result.close(); resolve(null); };
            tx.onerror = () => reject(tx.error);
          };
        }));
        const step = (await status(page)).step;
        await page.reload();
        await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
        assert.equal((await status(page)).step, step, 'the model did not come back');
        assert.deepEqual(await page.evaluate(() => window.cellvae.groups()), []);
        assert.match(await page.textContent('[data-testid="restore-note"]'), /groups of cells kept in this browser were damaged or not for this data: they were discarded/);
      });
      assert.deepEqual(b.consoleErrors.filter((e) => !/favicon/.test(e)), [], 'console errors');
    } finally {
      await b.close();
    }
  });
}

test('compare cells with the engine on the page (?thread=page)', async () => {
  const b = await launch(false);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1400, height: 900 });
    await openApp(page, `${BASE_URL}?thread=page`);
    assert.equal((await status(page)).thread, 'page');
    await loadDemo(page);
    await page.click('[data-testid="train-step"]');
    await page.waitForFunction(() => window.cellvae.status().step >= 1);
    await page.evaluate(() => window.cellvae.selectCells(Array.from({ length: 60 }, (_, i) => i)));
    await page.click('[data-testid="group-make"]');
    await page.selectOption('[data-testid="cmp-group2"]', 'rest');
    await page.fill('[data-testid="cmp-samples"]', '200');
    const c = await runCompare(page);
    assert.equal(c.error, null);
    assert.equal(c.result.n_cells1, 60);
    assert.equal(c.result.n_cells2, 640);
    assert.equal(c.result.n_genes, (await page.evaluate(() => window.cellvae.modelGenes())).length);
    assert.equal(c.result.csv_header.split(',')[0], 'gene_id');
  } finally {
    await b.close();
  }
});

test('decode as: with a batch column, every batch or one batch', async () => {
  const b = await launch(false);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1400, height: 900 });
    await openApp(page);
    await loadDemo(page);
    // No batches: no decode-as choice.
    assert.ok(await page.locator('[data-testid="cmp-decode"]').isHidden());
    await page.evaluate(() => window.cellvae.selectCells(Array.from({ length: 80 }, (_, i) => i)));
    await page.click('[data-testid="group-make"]');
    await page.click('[data-testid="settings"] summary');
    await page.selectOption('[data-testid="opt-batch-key"]', 'phase');
    await page.click('[data-testid="train-reset"]');
    await page.waitForFunction(() => window.cellvae.status().batch_key === 'phase' && window.cellvae.status().model.n_batches === 3);
    await page.click('[data-testid="train-step"]');
    await page.waitForFunction(() => window.cellvae.status().step >= 1);
    assert.ok(await page.locator('[data-testid="cmp-decode"]').isVisible());
    const choices = await page.$$eval('[data-testid="cmp-decode"] option', (os) => os.map((o) => o.value));
    assert.deepEqual(choices, ['observed', 'all', 'b:0', 'b:1', 'b:2']);
    // The group made before the new model is still there (same cells).
    assert.equal((await page.evaluate(() => window.cellvae.groups())).length, 1);
    await page.selectOption('[data-testid="cmp-group2"]', 'rest');
    await page.fill('[data-testid="cmp-samples"]', '200');
    await page.selectOption('[data-testid="cmp-decode"]', 'all');
    let c = await runCompare(page);
    assert.equal(c.error, null);
    assert.deepEqual(c.result.options.decode_as, { kind: 'all_batches' });
    assert.match(await page.textContent('[data-testid="cmp-summary"]'), /Decoded as every batch in turn\./);
    await page.selectOption('[data-testid="cmp-decode"]', 'b:1');
    c = await runCompare(page);
    assert.equal(c.error, null);
    assert.deepEqual(c.result.options.decode_as, { kind: 'batch', batch: 1 });
    const level = await page.$eval('[data-testid="cmp-decode"] option[value="b:1"]', (o) => o.textContent.replace(/^batch /, ''));
    assert.match(await page.textContent('[data-testid="cmp-summary"]'), new RegExp(`Decoded as batch ${level}\\.`));
    assert.equal(c.result.n_cells1, 80);
  } finally {
    await b.close();
  }
});

test('compare a model trained on the GPU (WebGPU, SwiftShader)', async () => {
  const b = await launch(true);
  try {
    const { page } = b;
    await page.setViewportSize({ width: 1400, height: 900 });
    await openApp(page);
    await loadDemo(page);
    await page.click('[data-testid="settings"] summary');
    // A small model: SwiftShader is slow.
    await page.fill('[data-testid="opt-n-hidden"]', '16');
    await page.fill('[data-testid="opt-top-genes"]', '200');
    await page.selectOption('[data-testid="opt-device"]', 'gpu');
    await page.click('[data-testid="train-reset"]');
    await page.waitForFunction(() => window.cellvae.status().gpu_state === 'on', null, { timeout: 120_000 });
    for (let i = 1; i <= 3; i++) {
      await page.click('[data-testid="train-step"]');
      await page.waitForFunction((k) => window.cellvae.status().step === k && !window.cellvae.status().training, i, { timeout: 60_000 });
    }
    assert.equal((await status(page)).training_backend, 'webgpu');
    await page.locator('[data-testid="legend"] li[data-level]', { hasText: 'CD14+ Monocyte' }).first().click();
    await page.click('[data-testid="group-make"]');
    await page.locator('[data-testid="legend"] li[data-level]', { hasText: 'CD19+ B' }).first().click();
    await page.click('[data-testid="group-make"]');
    await page.selectOption('[data-testid="cmp-group1"]', 'g:1');
    await page.selectOption('[data-testid="cmp-group2"]', 'g:2');
    await page.fill('[data-testid="cmp-samples"]', '300');
    const c = await runCompare(page);
    assert.equal(c.error, null);
    assert.equal(c.result.n_genes, 200);
    assert.equal(c.volcano_points, 200);
    assert.equal(c.result.n_cells1, cellTypeCounts().get('CD14+ Monocyte'));
    assert.equal(c.result.n_cells2, cellTypeCounts().get('CD19+ B'));
    assert.equal((await status(page)).gpu_state, 'on', 'the GPU run stopped');
  } finally {
    await b.close();
  }
});
