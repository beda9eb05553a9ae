// @ts-check
// cellvae page: the map's cells drawn by WebGL2 (the GPU; SwiftShader where there is none),
// pixel for pixel as map.js's drawPoints stamps them: a round dot of radius dotRadius(n)
// (2.6 px up to 20,000 cells, smaller above, one pixel from about 540,000) on a square of
// 2 dotReach + 1 pixels centred on the cell's rounded pixel, coverage-weighted, alpha 0.85,
// cells in draw order (`colours.order`, later on top). The points are drawn into a canvas of its
// own (never in the document) and composited onto the map's 2-D canvas between the
// background (field image, axes) and what lies above the cells (labels, rings, probe,
// lasso), so the map stays one canvas: its pixels, its PNG export and its events are as
// before. Positions (the projected x, y) and colour indices are uploaded when they change
// (once per latent update or colouring), the colour table as a small texture, the view as
// uniforms, so panning and zooming upload nothing. A lost context (webglcontextlost) turns
// the renderer off until it is restored; the map draws with drawPoints meanwhile. `software`
// says whether WebGL runs on the CPU (no GPU, or a blocked one): map-view.js then prefers
// drawPoints, which is faster there.

import { rgbOf, dotRadius, dotReach } from './map.js';

/** @typedef {import('./map.js').View} View @typedef {import('./map.js').Colours} Colours */

// The canvas path draws dots whose centre lies up to 3 px outside the map; GL discards a
// point whose centre is outside its viewport, so the GL canvas has this margin all round.
const MARGIN = 4;
const TABLE_WIDTH = 1024;
// WebGL renderers that run on the CPU. On this project's 2-core machines SwiftShader draws
// the cells 4 to 10 times as slowly as drawPoints (docs/PAGE.md, "The map's cells on the GPU").
const SOFTWARE = /swiftshader|llvmpipe|softpipe|lavapipe|software|basic render/i;

const VERTEX = `#version 300 es
layout(location = 0) in vec2 a_pos;
layout(location = 1) in uint a_colour;
uniform vec2 u_origin;  // view's x0, y0
uniform vec2 u_scale;   // px per unit in x, y
uniform vec2 u_size;    // the map's W, H
uniform vec2 u_gl;      // the GL canvas's width, height (W, H plus the margins)
uniform float u_margin;
uniform float u_point;  // the dot's square: 2 dotReach + 1 px
flat out uint v_colour;
void main() {
  // The canvas path's pixel: x = round((px - x0) sx), y = round(H - (py - y0) sy); its dot
  // is centred on that pixel's centre.
  float x = floor((a_pos.x - u_origin.x) * u_scale.x + 0.5);
  float y = floor(u_size.y - (a_pos.y - u_origin.y) * u_scale.y + 0.5);
  vec2 c = vec2(x, y) + 0.5 + u_margin;
  gl_Position = vec4(c.x / u_gl.x * 2.0 - 1.0, 1.0 - c.y / u_gl.y * 2.0, 0.0, 1.0);
  gl_PointSize = u_point;
  v_colour = a_colour;
}`;

const FRAGMENT = `#version 300 es
precision highp float;
uniform highp sampler2D u_table;
uniform float u_alpha;
uniform float u_radius; // dotRadius(n)
uniform float u_point;
flat in uint v_colour;
out vec4 o;
void main() {
  // Fragment centres sit at whole-pixel offsets -R..R from the dot's centre.
  vec2 d = (gl_PointCoord - 0.5) * u_point;
  float cover = clamp(u_radius + 0.5 - length(d), 0.0, 1.0);
  if (cover <= 0.0) discard;
  int i = int(v_colour);
  vec3 rgb = texelFetch(u_table, ivec2(i % ${TABLE_WIDTH}, i / ${TABLE_WIDTH}), 0).rgb;
  float a = u_alpha * cover;
  o = vec4(rgb * a, a);
}`;

/** @param {WebGL2RenderingContext} gl @param {number} type @param {string} src */
function shader(gl, type, src) {
  const s = gl.createShader(type);
  if (!s) throw new Error('WebGL2: cannot create a shader');
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS) && !gl.isContextLost()) throw new Error(`WebGL2 shader: ${gl.getShaderInfoLog(s)}`);
  return s;
}

/**
 * What the context holds: the program and its uniforms, the buffers (positions, colour
 * indices, draw order) in a vertex array, the colour table's texture, and which arrays
 * they hold (by identity; `version`: the positions' version).
 * @param {WebGL2RenderingContext} gl
 */
function resources(gl) {
  const prog = gl.createProgram();
  if (!prog) throw new Error('WebGL2: cannot create a program');
  gl.attachShader(prog, shader(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(prog, shader(gl, gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS) && !gl.isContextLost()) throw new Error(`WebGL2 program: ${gl.getProgramInfoLog(prog)}`);
  /** @param {string} name */
  const loc = (name) => gl.getUniformLocation(prog, name);
  const u = { origin: loc('u_origin'), scale: loc('u_scale'), size: loc('u_size'), gl: loc('u_gl'), margin: loc('u_margin'), table: loc('u_table'), alpha: loc('u_alpha'), radius: loc('u_radius'), point: loc('u_point') };
  const vao = gl.createVertexArray(), posBuf = gl.createBuffer(), colBuf = gl.createBuffer(), orderBuf = gl.createBuffer(), tex = gl.createTexture();
  gl.bindVertexArray(vao);
  gl.bindBuffer(gl.ARRAY_BUFFER, posBuf);
  gl.enableVertexAttribArray(0);
  gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
  gl.bindBuffer(gl.ARRAY_BUFFER, colBuf);
  gl.enableVertexAttribArray(1);
  gl.vertexAttribIPointer(1, 1, gl.UNSIGNED_SHORT, 0, 0);
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, orderBuf);
  gl.bindVertexArray(null);
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  const held = {
    /** @type {Float32Array | null} */ proj: null, version: -1, n: -1,
    /** @type {Uint16Array | null} */ index: null,
    /** @type {Uint32Array | null} */ order: null,
    /** @type {string[] | null} */ table: null,
  };
  return { prog, u, vao, posBuf, colBuf, orderBuf, tex, held };
}

export class GlPoints {
  /** @param {() => void} onChange called when the renderer is lost or comes back (redraw the map) */
  constructor(onChange) {
    this.onChange = onChange;
    this.canvas = document.createElement('canvas');
    /** true while the context is lost */
    this.lost = false;
    /** @type {string | null} why the renderer cannot draw (null: it can) */
    this.error = null;
    this.canvas.addEventListener('webglcontextlost', (e) => {
      if (this.disposed) return;
      e.preventDefault(); // allows webglcontextrestored
      this.lost = true;
      this.onChange();
    });
    this.canvas.addEventListener('webglcontextrestored', () => {
      if (this.disposed) return;
      this.lost = false;
      try { this.setup(); } catch (e) { this.error = String(e); }
      this.onChange();
    });
    const gl = this.canvas.getContext('webgl2', {
      alpha: true, premultipliedAlpha: true, antialias: false, depth: false, stencil: false,
      preserveDrawingBuffer: false, powerPreference: 'high-performance',
    });
    if (!gl) throw new Error('WebGL2 is not available');
    this.gl = gl;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    /** the WebGL renderer (the GPU, or a software one) */
    this.name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    /** whether WebGL runs on the CPU (SwiftShader, llvmpipe, ...): slower there than drawPoints */
    this.software = SOFTWARE.test(this.name);
    /** set by dispose(): events are ignored */
    this.disposed = false;
    this.r = resources(gl);
    // Asked for now: a lost context gives out no extension.
    this.loseExt = gl.getExtension('WEBGL_lose_context');
  }

  /** Program, buffers, texture; everything uploaded is forgotten (a restored context has none). */
  setup() {
    this.r = resources(this.gl);
  }

  /** Whether draw() can draw now. */
  get ready() {
    return !this.lost && !this.error && !this.gl.isContextLost();
  }

  /**
   * Uploads what changed: positions when `proj`, `version` or `n` differ from the last
   * upload (the caller bumps `version` when it rewrites `proj` in place), colour indices,
   * order and table when `colours` holds other arrays.
   * @param {Float32Array} proj @param {number} version @param {number} n @param {Colours} colours
   */
  upload(proj, version, n, colours) {
    const gl = this.gl, r = this.r, h = r.held;
    if (h.proj !== proj || h.version !== version || h.n !== n) {
      let data = proj.length === 2 * n ? proj : proj.subarray(0, 2 * n);
      // A cell without a finite position is not drawn (as in drawPoints): far outside.
      for (let i = 0; i < 2 * n; i++) {
        if (!Number.isFinite(data[i])) {
          data = Float32Array.from(data, (x) => (Number.isFinite(x) ? x : -1e30));
          break;
        }
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, r.posBuf);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
      h.proj = proj; h.version = version; h.n = n;
    }
    if (h.index !== colours.index) {
      gl.bindBuffer(gl.ARRAY_BUFFER, r.colBuf);
      gl.bufferData(gl.ARRAY_BUFFER, colours.index, gl.DYNAMIC_DRAW);
      h.index = colours.index;
    }
    if (h.order !== colours.order) {
      if (colours.order) {
        gl.bindVertexArray(r.vao);
        gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, r.orderBuf);
        gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, colours.order, gl.DYNAMIC_DRAW);
        gl.bindVertexArray(null);
      }
      h.order = colours.order;
    }
    if (h.table !== colours.table) {
      const len = Math.max(1, colours.table.length);
      const w = Math.min(len, TABLE_WIDTH), rows = Math.ceil(len / TABLE_WIDTH);
      const px = new Uint8Array(w * rows * 4);
      colours.table.forEach((c, i) => {
        const [r, g, b] = rgbOf(c);
        px.set([r, g, b, 255], i * 4);
      });
      gl.bindTexture(gl.TEXTURE_2D, r.tex);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, w, rows, 0, gl.RGBA, gl.UNSIGNED_BYTE, px);
      h.table = colours.table;
    }
  }

  /**
   * Draws cells 0..n-1 (`proj`: n x 2 in the plane) as drawPoints would on a W x H map in
   * view `v`, onto `ctx` (source-over, what is there stays under the cells). Returns false
   * when it did not draw (the caller draws with drawPoints).
   * @param {CanvasRenderingContext2D} ctx @param {Float32Array} proj @param {number} version @param {number} n
   * @param {View} v @param {number} W @param {number} H @param {Colours} colours
   */
  draw(ctx, proj, version, n, v, W, H, colours) {
    if (!this.ready || W <= 0 || H <= 0) return false;
    try {
      return this.drawNow(ctx, proj, version, n, v, W, H, colours);
    } catch (e) {
      // Never again in this page: the canvas path draws from now on.
      this.error = e instanceof Error ? e.message : String(e);
      console.error(`cellvae: the map's WebGL2 renderer failed (${this.error}); drawing on a 2-D canvas`);
      return false;
    }
  }

  /**
   * @param {CanvasRenderingContext2D} ctx @param {Float32Array} proj @param {number} version @param {number} n
   * @param {View} v @param {number} W @param {number} H @param {Colours} colours
   */
  drawNow(ctx, proj, version, n, v, W, H, colours) {
    const gl = this.gl;
    const gw = W + 2 * MARGIN, gh = H + 2 * MARGIN;
    if (this.canvas.width !== gw || this.canvas.height !== gh) {
      this.canvas.width = gw;
      this.canvas.height = gh;
    }
    this.upload(proj, version, n, colours);
    gl.viewport(0, 0, gw, gh);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (n > 0) {
      const r = this.r, u = r.u;
      gl.useProgram(r.prog);
      gl.uniform2f(u.origin, v.x0, v.y0);
      gl.uniform2f(u.scale, W / (v.x1 - v.x0), H / (v.y1 - v.y0));
      gl.uniform2f(u.size, W, H);
      gl.uniform2f(u.gl, gw, gh);
      gl.uniform1f(u.margin, MARGIN);
      gl.uniform1f(u.alpha, 0.85);
      const radius = dotRadius(n);
      gl.uniform1f(u.radius, radius);
      gl.uniform1f(u.point, 2 * dotReach(radius) + 1);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, r.tex);
      gl.uniform1i(u.table, 0);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.bindVertexArray(r.vao);
      if (colours.order) gl.drawElements(gl.POINTS, Math.min(n, colours.order.length), gl.UNSIGNED_INT, 0);
      else gl.drawArrays(gl.POINTS, 0, n);
      gl.bindVertexArray(null);
    }
    if (gl.isContextLost()) return false;
    ctx.drawImage(this.canvas, MARGIN, MARGIN, W, H, 0, 0, W, H);
    return true;
  }

  /** Gives the context back (it is not used again). */
  dispose() {
    this.disposed = true;
    if (this.loseExt) this.loseExt.loseContext();
  }

  /** Tests: lose the context (WEBGL_lose_context), or restore it. @param {boolean} lose */
  testLoseContext(lose) {
    const ext = this.loseExt;
    if (!ext) return false;
    if (lose) ext.loseContext(); else ext.restoreContext();
    return true;
  }
}
