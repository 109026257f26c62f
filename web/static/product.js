// Products as the console shows them: a picture (or the initials of the
// name when the catalog has none), the name, the price, the confidence.

const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD' });

export function formatCents(cents) {
  return money.format(cents / 100);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const c of children) if (c != null) node.append(c);
  return node;
}
export { el };

/** A stable hue per sku, so the same product always has the same swatch. */
function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function thumb(product) {
  if (product.image_url) {
    const img = el('img', { className: 'thumb', src: product.image_url, alt: '', loading: 'lazy' });
    img.referrerPolicy = 'no-referrer';
    return img;
  }
  // Initials of the first two words that are words, not sizes ("Milk 1 l" → "M").
  const initials = (product.name || product.sku)
    .split(/\s+/)
    .filter((w) => /^\p{L}/u.test(w))
    .slice(0, 2)
    .map((w) => w[0]?.toUpperCase() ?? '')
    .join('');
  const box = el('span', { className: 'thumb', textContent: initials });
  box.setAttribute('aria-hidden', 'true');
  box.style.background = `hsl(${hue(product.sku)} 60% 62%)`;
  return box;
}

/**
 * One product as a toggle button in a list. `index` (from 1) shows the
 * digit that chooses it; `confidence` is the model's, for candidates.
 */
export function productItem(product, { index, confidence, onChoose }) {
  const name = product.name ?? product.sku;
  const meta = `${product.sku}${product.price_cents != null ? ' · ' + formatCents(product.price_cents) : ''}`;
  const label = el('span', {},
    el('span', { className: 'product-name', textContent: name }),
    el('span', { className: 'product-meta', textContent: meta }));
  let right = null;
  if (confidence != null) {
    const pct = Math.round(confidence * 100);
    const bar = el('span', { className: 'bar' });
    bar.style.width = `${Math.max(4, pct)}%`;
    right = el('span', { className: 'confidence', textContent: `${pct}%`, title: 'Model confidence' }, bar);
  } else if (index != null) {
    right = el('kbd', { textContent: String(index) });
  }
  const button = el('button', { type: 'button', className: 'product' }, thumb(product), label, right);
  if (index != null && confidence != null) {
    button.querySelector('.product-name').prepend(el('kbd', { textContent: String(index) }), ' ');
  }
  button.dataset.sku = product.sku;
  button.setAttribute('aria-pressed', 'false');
  button.addEventListener('click', () => onChoose(product));
  return el('li', {}, button);
}
