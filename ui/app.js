// The relurl dashboard: sign-in, hash routes to each page, the shell around them.
import { html, render, useState, useEffect } from './vendor/preact-htm.mjs';
import { api, getKey, setKey, clearKey, useGet, fmtTime, Notice } from './api.js';
import { LinksPage } from './links.js';
import { LinkPage, StatsView } from './stats.js';
import { EndpointsPage, DeliveriesPage } from './webhooks.js';

const NAV = [
  ['#/links', 'Links'],
  ['#/overview', 'Overview'],
  ['#/webhooks', 'Endpoints'],
  ['#/incidents', 'Fraud'],
];

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/links');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/links');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function page(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  switch (parts[0]) {
    case 'links':
      return parts[1] ? html`<${LinkPage} code=${parts[1]} />` : html`<${LinksPage} />`;
    case 'overview':
      return html`<${OverviewPage} />`;
    case 'webhooks':
      return parts[1] ? html`<${DeliveriesPage} id=${parts[1]} />` : html`<${EndpointsPage} />`;
    case 'incidents':
      return html`<${IncidentsPage} />`;
    default:
      return html`<${LinksPage} />`;
  }
}

function SignIn({ onSignedIn }) {
  const [key, setValue] = useState('');
  const [notice, setNotice] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setKey(key.trim());
    try {
      await api('GET', '/v1/links?limit=1');
      onSignedIn();
    } catch (err) {
      clearKey();
      setNotice({ error: true, text: `Sign-in failed: ${err.message}` });
    }
  };
  return html`<main class="signin">
    <h1>relurl</h1>
    <form onSubmit=${submit} id="signin">
      <label for="api-key">API key</label>
      <input id="api-key" type="password" autocomplete="off" placeholder="rl_…" required
        value=${key} onInput=${(e) => setValue(e.target.value)} />
      <button type="submit">Sign in</button>
      <p class="hint">The key stays in this tab's session storage until you sign out.</p>
    </form>
    <${Notice} notice=${notice} />
  </main>`;
}

function OverviewPage() {
  return html`<section>
    <h1>Account overview</h1>
    <${StatsView} path="/v1/stats" />
  </section>`;
}

function IncidentsPage() {
  const { data, error, loading } = useGet('/v1/fraud/incidents?limit=100');
  return html`<section>
    <h1>Fraud incidents</h1>
    ${error && html`<p class="notice error">${error.message}</p>`}
    ${loading && !data && html`<p>Loading…</p>`}
    ${data && data.items.length === 0 && html`<p class="empty" id="incidents-empty">No fraud incidents: no link has seen a click flood.</p>`}
    ${data && data.items.length > 0 && html`<div class="table-box"><table id="incidents" class="stack">
      <thead><tr><th>When</th><th>Link</th><th>IP range</th><th>Clicks</th><th>Window</th><th>Action</th></tr></thead>
      <tbody>${data.items.map((i) => html`<tr>
        <td data-label="When">${fmtTime(i.at)}</td>
        <td data-label="Link"><a href=${`#/links/${encodeURIComponent(i.code)}`}>${i.code}</a></td>
        <td data-label="IP range">${i.ip_range}</td>
        <td data-label="Clicks">${i.clicks}</td>
        <td data-label="Window">${i.window}</td>
        <td data-label="Action">${i.action}</td>
      </tr>`)}</tbody></table></div>`}
  </section>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(getKey()));
  const hash = useHash();
  useEffect(() => {
    const out = () => setSignedIn(false);
    window.addEventListener('relurl-signed-out', out);
    return () => window.removeEventListener('relurl-signed-out', out);
  }, []);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  const signOut = () => {
    clearKey();
    setSignedIn(false);
  };
  return html`<header class="top">
      <a class="brand" href="#/links">relurl</a>
      <nav>${NAV.map(([href, label]) => html`<a href=${href} class=${hash.startsWith(href) ? 'active' : ''}>${label}</a>`)}</nav>
      <button class="secondary" id="signout" onClick=${signOut}>Sign out</button>
    </header>
    <main>${page(hash)}</main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the boot message
render(html`<${App} />`, root);
