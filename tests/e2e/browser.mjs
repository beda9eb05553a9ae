// Shared helpers for the browser tests: launch Debian's Chromium through playwright-core
// (never a downloaded browser), with or without WebGPU, against the page that
// `cargo xtask test` serves at CELLVAE_BASE_URL.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

export const BASE_URL = process.env.CELLVAE_BASE_URL;
export const ARTIFACTS = process.env.CELLVAE_ARTIFACTS || path.join(os.tmpdir(), 'cellvae-e2e');
export const SHARED = process.env.CELLVAE_SHARED_DATA || path.resolve('../shared/data');

if (!BASE_URL) throw new Error('CELLVAE_BASE_URL is not set: run these tests through `cargo xtask test`');

const COMMON = [
  '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
const WEBGPU = ['--enable-unsafe-webgpu', '--use-angle=vulkan', '--enable-features=Vulkan', '--use-vulkan=swiftshader'];

// `opts.profile`: a profile directory to use and keep (a browser restart reopens it);
// without it, a fresh one that close() deletes.
export async function launch(webgpu, opts = {}) {
  const profile = opts.profile || fs.mkdtempSync(path.join(os.tmpdir(), 'cellvae-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...COMMON, ...(webgpu ? WEBGPU : ['--disable-gpu'])],
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  // Every request of the context: the page's, its workers' and any other page's.
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  return {
    page, context, consoleErrors, requests,
    async close() {
      await context.close();
      if (!opts.profile) fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function openApp(page, url = BASE_URL) {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
}

export function status(page) {
  return page.evaluate(() => window.cellvae.status());
}

// Shape and total straight from Matrix Market text, independent of the wasm reader.
export function mtxFacts(file) {
  let text = fs.readFileSync(file);
  if (file.endsWith('.gz')) text = zlib.gunzipSync(text);
  const lines = text.toString('utf8').split('\n').filter((l) => l && !l.startsWith('%'));
  const [genes, cells, nnz] = lines[0].trim().split(/\s+/).map(Number);
  let total = 0;
  for (let i = 1; i < lines.length; i++) total += Number(lines[i].trim().split(/\s+/)[2]);
  return { cells, genes, nnz, total };
}

export function screenshotPath(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
