// Small DOM helpers shared by the dashboard's views.

export const $ = (id) => document.getElementById(id);

/** Creates an element; text only ever goes in through textContent. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') element.className = value;
    else if (key === 'text') element.textContent = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key in element && typeof value !== 'string') element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** Text with `code` spans, as task type descriptions write them. */
export function richText(text) {
  const fragment = document.createDocumentFragment();
  String(text)
    .split('`')
    .forEach((part, index) => fragment.append(index % 2 ? h('code', { text: part }) : part));
  return fragment;
}

/** Fills a problem box: a title, an optional list and advice; hidden when `message` is empty. */
export function showProblem(element, message, list = [], advice = '') {
  element.replaceChildren();
  element.hidden = !message;
  if (!message) return;
  element.append(h('p', { className: 'problem-title', text: message }));
  if (list.length) element.append(h('ul', {}, ...list.map((item) => h('li', { text: item }))));
  if (advice) element.append(h('p', { className: 'problem-advice', text: advice }));
}
