// cellvae page: reads and parses count files in a Web Worker so the page never freezes.
// Loads the same wasm core as the page, reads each File in chunks (reporting progress),
// parses with `read_files`, and hands the matrix back as bytes (`Dataset.to_bytes`,
// transferred, not copied) for `Dataset.from_bytes` on the page.
import init, { read_files } from './pkg/cellvae.js';

const ready = init();

function message(e) {
  return String(e && e.message ? e.message : e);
}

self.onmessage = async (event) => {
  const { files, obs } = event.data;
  const post = (m, transfer) => self.postMessage(m, transfer || []);
  try {
    await ready;
    const all = obs ? [...files, obs] : files;
    const total = all.reduce((a, f) => a + (f.bytes ? f.bytes.length : f.file.size), 0);
    let loaded = 0;
    let lastPost = 0;
    const readOne = async (f) => {
      if (f.bytes) {
        loaded += f.bytes.length;
        return { name: f.name, bytes: f.bytes };
      }
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
          post({ type: 'progress', phase: 'reading', file: f.name, loaded, total });
        }
      }
      return { name: f.name, bytes: at === out.length ? out : out.subarray(0, at) };
    };
    const t0 = performance.now();
    const entries = [];
    for (const f of files) entries.push(await readOne(f));
    const obsEntry = obs ? await readOne(obs) : null;
    post({ type: 'progress', phase: 'parsing', loaded: total, total });
    const t1 = performance.now();
    const dataset = read_files(entries, obsEntry);
    const bytes = dataset.to_bytes();
    dataset.free();
    const t2 = performance.now();
    post({ type: 'done', bytes, read_ms: t1 - t0, parse_ms: t2 - t1 }, [bytes.buffer]);
  } catch (e) {
    post({ type: 'error', message: message(e) });
  }
};
