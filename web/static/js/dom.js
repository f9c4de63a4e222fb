// Small DOM helpers. Data from the server or from people is only ever set
// as text (textContent / attributes by name), never parsed as HTML.

export const $ = (id) => document.getElementById(id);

/**
 * el('li', {class: 'row', data: {id}}, 'text', child) — children that are
 * strings become text nodes.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'hidden') node.hidden = true;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';

/** An icon from the sprite, e.g. icon('share'). */
export function icon(name, cls = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `${document.body.dataset.static}/img/icons.svg#${name}`);
  svg.append(use);
  return svg;
}

let toastTimer = 0;
/** A short message at the bottom of the screen. */
export function toast(message, ms = 3000) {
  const box = $('toast');
  if (!box) return;
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, ms);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
