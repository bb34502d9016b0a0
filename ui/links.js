// The links table: search and tag filter, create, edit, disable/enable,
// copy the short URL, its QR code.
import { html, useState, useEffect } from './vendor/preact-htm.mjs';
import { api, query, Notice, attempt } from './api.js';

const tagList = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);

/** The QR code of `text` as a data: URL (qrcode-generator, loaded as a classic script). */
export function qrDataUrl(text) {
  const qr = window.qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  return qr.createDataURL(6, 8);
}

function CreateForm({ onCreated, setNotice }) {
  const [destination, setDestination] = useState('');
  const [code, setCode] = useState('');
  const [tags, setTags] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const body = { destination, tags: tagList(tags) };
    if (code.trim()) body.code = code.trim();
    const link = await attempt(setNotice, () => api('POST', '/v1/links', body), (l) => `Created ${l.short_url}`);
    if (link) {
      setDestination('');
      setCode('');
      setTags('');
      onCreated();
    }
  };
  return html`<form class="row-form" id="create-link" onSubmit=${submit}>
    <input name="destination" type="url" required placeholder="https://example.com/page" aria-label="Destination"
      value=${destination} onInput=${(e) => setDestination(e.target.value)} />
    <input name="code" placeholder="code (optional)" aria-label="Code" value=${code} onInput=${(e) => setCode(e.target.value)} />
    <input name="tags" placeholder="tags, comma separated" aria-label="Tags" value=${tags} onInput=${(e) => setTags(e.target.value)} />
    <button type="submit">Create link</button>
  </form>`;
}

function EditRow({ link, onDone, setNotice }) {
  const [destination, setDestination] = useState(link.destination);
  const [tags, setTags] = useState(link.tags.join(', '));
  const [disabled, setDisabled] = useState(link.disabled);
  const save = async (e) => {
    e.preventDefault();
    const body = { destination, tags: tagList(tags), disabled };
    const ok = await attempt(setNotice, () => api('PATCH', `/v1/links/${encodeURIComponent(link.code)}`, body), `Saved ${link.code}`);
    if (ok) onDone(true);
  };
  return html`<tr class="editing"><td colspan="6">
    <form class="row-form edit-link" onSubmit=${save}>
      <strong>${link.code}</strong>
      <input name="destination" type="url" required aria-label="Destination" value=${destination} onInput=${(e) => setDestination(e.target.value)} />
      <input name="tags" aria-label="Tags" value=${tags} onInput=${(e) => setTags(e.target.value)} />
      <label class="check"><input name="disabled" type="checkbox" checked=${disabled} onChange=${(e) => setDisabled(e.target.checked)} /> disabled</label>
      <button type="submit">Save</button>
      <button type="button" class="secondary" onClick=${() => onDone(false)}>Cancel</button>
    </form>
  </td></tr>`;
}

function QrDialog({ link, onClose }) {
  return html`<div class="overlay" onClick=${onClose}>
    <div class="dialog" id="qr" onClick=${(e) => e.stopPropagation()}>
      <h2>${link.code}</h2>
      <img src=${qrDataUrl(link.short_url)} alt=${`QR code of ${link.short_url}`} />
      <p><code>${link.short_url}</code></p>
      <button onClick=${onClose}>Close</button>
    </div>
  </div>`;
}

function LinkRow({ link, onEdit, onQr, onChanged, setNotice }) {
  const toggle = async () => {
    const disabled = !link.disabled;
    const ok = await attempt(setNotice, () => api('PATCH', `/v1/links/${encodeURIComponent(link.code)}`, { disabled }),
      `${disabled ? 'Disabled' : 'Enabled'} ${link.code}`);
    if (ok) onChanged();
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link.short_url);
      setNotice({ text: `Copied ${link.short_url}` });
    } catch {
      setNotice({ error: true, text: `Could not copy; the short URL is ${link.short_url}` });
    }
  };
  const state = link.disabled ? `disabled${link.disabled_reason ? ` (${link.disabled_reason})` : ''}` : 'active';
  return html`<tr data-code=${link.code}>
    <td data-label="Code"><a href=${`#/links/${encodeURIComponent(link.code)}`}>${link.code}</a></td>
    <td data-label="Destination" class="url">${link.destination}</td>
    <td data-label="Tags">${link.tags.map((t) => html`<span class="tag">${t}</span>`)}</td>
    <td data-label="Clicks" class="num clicks">${link.click_count}</td>
    <td data-label="State" class=${link.disabled ? 'bad' : 'good'}>${state}</td>
    <td data-label="Actions" class="actions">
      <button class="secondary" data-action="copy" onClick=${copy}>Copy</button>
      <button class="secondary" data-action="qr" onClick=${() => onQr(link)}>QR</button>
      <button class="secondary" data-action="edit" onClick=${() => onEdit(link.code)}>Edit</button>
      <button class="secondary" data-action="toggle" onClick=${toggle}>${link.disabled ? 'Enable' : 'Disable'}</button>
    </td>
  </tr>`;
}

export function LinksPage() {
  const [filter, setFilter] = useState({ q: '', tag: '' });
  const [draft, setDraft] = useState({ q: '', tag: '' });
  const [pages, setPages] = useState({ items: [], next: null });
  const [tick, setTick] = useState(0);
  const [editing, setEditing] = useState(null);
  const [qr, setQr] = useState(null);
  const [notice, setNotice] = useState(null);
  const load = async (cursor) => {
    const path = `/v1/links${query({ limit: 50, q: filter.q, tag: filter.tag, cursor })}`;
    const page = await attempt(setNotice, () => api('GET', path));
    if (page) {
      setPages((p) => ({ items: cursor ? [...p.items, ...page.items] : page.items, next: page.next_cursor }));
    }
  };
  useEffect(() => {
    load(null);
  }, [filter, tick]);
  const reload = () => setTick((t) => t + 1);
  const search = (e) => {
    e.preventDefault();
    setFilter({ q: draft.q.trim(), tag: draft.tag.trim() });
  };
  return html`<section>
    <h1>Links</h1>
    <${CreateForm} onCreated=${reload} setNotice=${setNotice} />
    <form class="row-form" id="filter-links" onSubmit=${search}>
      <input name="q" type="search" placeholder="search code, destination, tag" aria-label="Search"
        value=${draft.q} onInput=${(e) => setDraft({ ...draft, q: e.target.value })} />
      <input name="tag" placeholder="tag" aria-label="Tag" value=${draft.tag} onInput=${(e) => setDraft({ ...draft, tag: e.target.value })} />
      <button type="submit" class="secondary">Filter</button>
    </form>
    <${Notice} notice=${notice} />
    ${pages.items.length === 0
      ? html`<p class="empty">No links${filter.q || filter.tag ? ' match' : ' yet'}.</p>`
      : html`<div class="table-box"><table id="links" class="stack">
      <thead><tr><th>Code</th><th>Destination</th><th>Tags</th><th>Clicks</th><th>State</th><th></th></tr></thead>
      <tbody>${pages.items.map((link) => (editing === link.code
        ? html`<${EditRow} key=${link.code} link=${link} setNotice=${setNotice}
            onDone=${(changed) => { setEditing(null); if (changed) reload(); }} />`
        : html`<${LinkRow} key=${link.code} link=${link} onEdit=${setEditing} onQr=${setQr}
            onChanged=${reload} setNotice=${setNotice} />`))}</tbody></table></div>`}
    ${pages.next && html`<button class="secondary" onClick=${() => load(pages.next)}>More</button>`}
    ${qr && html`<${QrDialog} link=${qr} onClose=${() => setQr(null)} />`}
  </section>`;
}
