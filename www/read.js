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
    await pushStream(f.file, out, (n) => {
      loaded += n;
      const now = performance.now();
      if (now - lastPost > 50) {
        lastPost = now;
        progress({ phase: 'reading', file: f.name, loaded, total });
      }
    });
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

/**
 * Streams `blob` into `out` (the core's memory), calling `onPiece` with each piece's length.
 * @param {Blob} blob @param {FileBytes} out @param {(n: number) => void} onPiece
 */
async function pushStream(blob, out, onPiece) {
  const reader = blob.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    out.push(value);
    onPiece(value.length);
  }
}

/** Pieces the kept data is moved in: a few MB in JS at a time. */
const PIECE_BYTES = 8 << 20;

/**
 * The dataset encoded for keeping in this browser, as a Blob built a piece at a time (a
 * 300 MB matrix is never one buffer in JS, nor cloned whole into IndexedDB's queue).
 * @param {import('./pkg/cellvae.js').Dataset} dataset @returns {Blob}
 */
export function keptBlob(dataset) {
  const enc = dataset.encode();
  try {
    /** @type {BlobPart[]} */
    const parts = [];
    for (let at = 0; at < enc.size_bytes; at += PIECE_BYTES) {
      // Each piece goes into a Blob at once, so its bytes leave the JS heap.
      // (`piece` returns a copy in a fresh ArrayBuffer, never the core's shared memory.)
      parts.push(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (enc.piece(at, at + PIECE_BYTES))]));
    }
    return new Blob(parts);
  } finally {
    enc.free();
  }
}

/**
 * The dataset back from what was kept: a Blob (read into the core a piece at a time) or,
 * as earlier versions of the page kept it, a Uint8Array.
 * @param {Blob | Uint8Array} kept @returns {Promise<import('./pkg/cellvae.js').Dataset>}
 */
export async function readKept(kept) {
  if (kept instanceof Uint8Array) return core.Dataset.from_bytes(kept);
  const out = new core.FileBytes('the data kept in this browser', kept.size);
  try {
    await pushStream(kept, out, () => {});
  } catch (e) {
    out.free();
    throw e;
  }
  return core.Dataset.from_file_bytes(out);
}
