// @ts-check
// cellvae engine: reads the chosen files into memory in chunks, reporting progress (the
// engine then parses them with the wasm core's `read_files`).

/** @typedef {import('./protocol.js').FileEntry} FileEntry */

/**
 * @param {FileEntry[]} files @param {FileEntry | null} obs
 * @param {(p: {phase: 'reading', file: string, loaded: number, total: number}) => void} progress
 * @returns {Promise<{files: {name: string, bytes: Uint8Array}[], obs: {name: string, bytes: Uint8Array} | null}>}
 */
export async function readEntries(files, obs, progress) {
  const all = obs ? [...files, obs] : files;
  const total = all.reduce((a, f) => a + (f.bytes ? f.bytes.length : f.file ? f.file.size : 0), 0);
  let loaded = 0;
  let lastPost = 0;
  /** @param {FileEntry} f */
  const readOne = async (f) => {
    if (f.bytes) {
      loaded += f.bytes.length;
      return { name: f.name, bytes: f.bytes };
    }
    if (!f.file) throw new Error(`${f.name}: nothing to read`);
    const out = new Uint8Array(f.file.size);
    const reader = f.file.stream().getReader();
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.set(value, at);
      at += value.length;
      loaded += value.length;
      const now = performance.now();
      if (now - lastPost > 50) {
        lastPost = now;
        progress({ phase: 'reading', file: f.name, loaded, total });
      }
    }
    return { name: f.name, bytes: at === out.length ? out : out.subarray(0, at) };
  };
  const entries = [];
  for (const f of files) entries.push(await readOne(f));
  return { files: entries, obs: obs ? await readOne(obs) : null };
}
