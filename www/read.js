// @ts-check
// cellvae engine: reads the chosen files straight into the wasm core's memory, a piece at
// a time (`FileBytes`), reporting progress; the engine then parses them with the core's
// `read_files`. The whole file is never held in JS as well: a 400 MB file is in the tab
// once, not twice.

import { core } from './wasm.js';

/** @typedef {import('./protocol.js').FileEntry} FileEntry */
/** @typedef {import('./pkg/cellvae.js').FileBytes} FileBytes */

/**
 * @param {FileEntry[]} files @param {FileEntry | null} obs
 * @param {(p: {phase: 'reading', file: string, loaded: number, total: number}) => void} progress
 * @returns {Promise<{files: FileBytes[], obs: FileBytes | null}>}
 */
export async function readEntries(files, obs, progress) {
  const all = obs ? [...files, obs] : files;
  const total = all.reduce((a, f) => a + (f.bytes ? f.bytes.length : f.file ? f.file.size : 0), 0);
  let loaded = 0;
  let lastPost = 0;
  /** @type {FileBytes[]} */
  const made = [];
  /** @param {FileEntry} f @returns {Promise<FileBytes>} */
  const readOne = async (f) => {
    if (f.bytes) {
      const out = new core.FileBytes(f.name, f.bytes.length);
      made.push(out);
      out.push(f.bytes);
      loaded += f.bytes.length;
      return out;
    }
    if (!f.file) throw new Error(`${f.name}: nothing to read`);
    const out = new core.FileBytes(f.name, f.file.size);
    made.push(out);
    const reader = f.file.stream().getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.push(value);
      loaded += value.length;
      const now = performance.now();
      if (now - lastPost > 50) {
        lastPost = now;
        progress({ phase: 'reading', file: f.name, loaded, total });
      }
    }
    return out;
  };
  try {
    const entries = [];
    for (const f of files) entries.push(await readOne(f));
    return { files: entries, obs: obs ? await readOne(obs) : null };
  } catch (e) {
    // What was read so far goes back to the core's memory.
    for (const f of made) f.free();
    throw e;
  }
}
