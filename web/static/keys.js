// Keyboard shortcuts of the console. Typing in a field never triggers a
// shortcut, except Escape (leave the field) and the keys a field hands on
// (for the catalog search: arrows and Enter).

const typing = (target) =>
  target instanceof HTMLElement &&
  (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) &&
  !(target instanceof HTMLInputElement && ['button', 'checkbox', 'radio', 'range'].includes(target.type));

/** The name a binding uses for an event: "Shift+ArrowLeft", "p", "?", "Enter". */
export function keyName(event) {
  let key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key === ' ') key = 'Space';
  const shifted = event.shiftKey && event.key.length > 1;
  return (shifted ? 'Shift+' : '') + key;
}

/**
 * Installs `bindings` ({"p": fn, "Shift+ArrowLeft": fn, ...}). A binding
 * returns false to let the browser handle the key after all.
 */
export function install(bindings) {
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (event.key === 'Escape') {
      if (bindings.Escape?.(event) !== false) event.preventDefault();
      return;
    }
    if (typing(event.target)) return;
    const fn = bindings[keyName(event)];
    if (!fn) return;
    if (fn(event) !== false) event.preventDefault();
  });
}
