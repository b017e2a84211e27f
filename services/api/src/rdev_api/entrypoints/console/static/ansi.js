// ANSI SGR (colour and style) escape sequences → DOM spans.
// Text is only ever inserted as text nodes, so program output cannot inject markup.
// Other escape sequences (cursor movement, titles) are dropped.

// CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL|ST), lone ESC + char.
const ESCAPES = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

export function initialStyle() {
  return { b: false, d: false, i: false, u: false, s: false, inv: false, fg: null, bg: null };
}

function xterm256(n) {
  if (n < 16) return { cls: n };
  if (n < 232) {
    const v = n - 16;
    const level = (x) => (x === 0 ? 0 : 55 + x * 40);
    return { rgb: [level(Math.floor(v / 36)), level(Math.floor(v / 6) % 6), level(v % 6)] };
  }
  const g = 8 + (n - 232) * 10;
  return { rgb: [g, g, g] };
}

// Parse an extended colour (38;5;n or 38;2;r;g;b) starting at codes[i]; returns [colour, next i].
function extended(codes, i) {
  if (codes[i + 1] === 5 && codes.length > i + 2) return [xterm256(codes[i + 2] & 255), i + 3];
  if (codes[i + 1] === 2 && codes.length > i + 4) {
    return [{ rgb: [codes[i + 2], codes[i + 3], codes[i + 4]].map((c) => c & 255) }, i + 5];
  }
  return [null, codes.length];
}

export function applySgr(style, params) {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  let i = 0;
  while (i < codes.length) {
    const c = codes[i];
    if (c === 0) Object.assign(style, initialStyle());
    else if (c === 1) style.b = true;
    else if (c === 2) style.d = true;
    else if (c === 3) style.i = true;
    else if (c === 4) style.u = true;
    else if (c === 7) style.inv = true;
    else if (c === 9) style.s = true;
    else if (c === 22) style.b = style.d = false;
    else if (c === 23) style.i = false;
    else if (c === 24) style.u = false;
    else if (c === 27) style.inv = false;
    else if (c === 29) style.s = false;
    else if (c >= 30 && c <= 37) style.fg = { cls: c - 30 };
    else if (c >= 90 && c <= 97) style.fg = { cls: c - 90 + 8 };
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = { cls: c - 40 };
    else if (c >= 100 && c <= 107) style.bg = { cls: c - 100 + 8 };
    else if (c === 49) style.bg = null;
    else if (c === 38 || c === 48) {
      const [colour, next] = extended(codes, i);
      if (c === 38) style.fg = colour;
      else style.bg = colour;
      i = next;
      continue;
    }
    i += 1;
  }
  return style;
}

function plain(style) {
  return !style.b && !style.d && !style.i && !style.u && !style.s && !style.inv && !style.fg && !style.bg;
}

function colourInto(span, colour, kind) {
  if (!colour) return;
  if (colour.rgb) {
    const css = `rgb(${colour.rgb.join(',')})`;
    if (kind === 'fg') span.style.color = css;
    else span.style.backgroundColor = css;
  } else {
    span.classList.add(`${kind}-${colour.cls}`);
  }
}

function styledNode(text, style) {
  const node = document.createTextNode(text);
  if (plain(style)) return node;
  const span = document.createElement('span');
  for (const flag of ['b', 'd', 'i', 'u', 's']) if (style[flag]) span.classList.add(flag);
  const [fg, bg] = style.inv ? [style.bg || { cls: 0 }, style.fg || { cls: 7 }] : [style.fg, style.bg];
  colourInto(span, fg, 'fg');
  colourInto(span, bg, 'bg');
  span.appendChild(node);
  return span;
}

// Render one line into a DocumentFragment. `style` carries over from line to line,
// as it does on a terminal; pass the same object for every line of one stream.
export function renderAnsi(text, style = initialStyle()) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  ESCAPES.lastIndex = 0;
  for (let m = ESCAPES.exec(text); m !== null; m = ESCAPES.exec(text)) {
    if (m.index > last) fragment.appendChild(styledNode(text.slice(last, m.index), style));
    if (m[2] === 'm' && m[1] !== undefined && !m[1].startsWith('?')) applySgr(style, m[1]);
    last = ESCAPES.lastIndex;
  }
  if (last < text.length) fragment.appendChild(styledNode(text.slice(last), style));
  return fragment;
}
