// Webhook endpoints (create, rotate, test, enable/disable) and each one's
// delivery log with retry and recover-by-time-range.
import { html, useState, useEffect } from './vendor/preact-htm.mjs';
import { api, query, useGet, fmtTime, Notice, attempt } from './api.js';

/** Event ids are UUIDv7: their leading digits are the time, alike for neighbours, so show the end. */
const shortId = (id) => `…${id.slice(-12)}`;
const eventList = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);

/** A signing secret, shown once. */
function Secret({ secret, onDismiss }) {
  if (!secret) return null;
  return html`<div class="secret" id="secret" role="alert">
    <p><strong>Signing secret for ${secret.url}</strong> — shown only now; store it in your receiver.</p>
    <code>${secret.value}</code>
    <button class="secondary" onClick=${onDismiss}>I have stored it</button>
  </div>`;
}

function CreateEndpoint({ onCreated, setNotice }) {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState('*');
  const [description, setDescription] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const body = { url, events: eventList(events) };
    if (description.trim()) body.description = description.trim();
    const created = await attempt(setNotice, () => api('POST', '/v1/webhooks', body), 'Endpoint created');
    if (created) {
      setUrl('');
      setDescription('');
      onCreated(created);
    }
  };
  return html`<form class="row-form" id="create-endpoint" onSubmit=${submit}>
    <input name="url" type="url" required placeholder="https://example.com/webhooks" aria-label="URL" value=${url} onInput=${(e) => setUrl(e.target.value)} />
    <input name="events" placeholder="event types, comma separated, or *" aria-label="Events" value=${events} onInput=${(e) => setEvents(e.target.value)} />
    <input name="description" placeholder="description (optional)" aria-label="Description" value=${description} onInput=${(e) => setDescription(e.target.value)} />
    <button type="submit">Add endpoint</button>
  </form>`;
}

function EndpointRow({ endpoint: ep, onChanged, onSecret, setNotice }) {
  const path = `/v1/webhooks/${encodeURIComponent(ep.id)}`;
  const test = () => attempt(setNotice, () => api('POST', `${path}/test`), (r) => `Test event ${r.event_id} sent`);
  const rotate = async () => {
    const r = await attempt(setNotice, () => api('POST', `${path}/rotate-secret`), 'Secret rotated; the previous one signs for 24 h more');
    if (r) onSecret({ url: ep.url, value: r.secret });
  };
  const toggle = async () => {
    const ok = await attempt(setNotice, () => api('PATCH', path, { enabled: !ep.enabled }), `${ep.enabled ? 'Disabled' : 'Enabled'} ${ep.url}`);
    if (ok) onChanged();
  };
  return html`<tr data-id=${ep.id}>
    <td data-label="URL" class="url"><a href=${`#/webhooks/${encodeURIComponent(ep.id)}`}>${ep.url}</a>
      ${ep.description && html`<div class="hint">${ep.description}</div>`}</td>
    <td data-label="Events">${ep.events.join(', ')}</td>
    <td data-label="State" class=${ep.enabled ? 'good' : 'bad'}>${ep.enabled ? 'enabled' : `disabled${ep.disabled_reason ? `: ${ep.disabled_reason}` : ''}`}</td>
    <td data-label="Actions" class="actions">
      <button class="secondary" data-action="test" onClick=${test}>Send test</button>
      <button class="secondary" data-action="rotate" onClick=${rotate}>Rotate secret</button>
      <button class="secondary" data-action="toggle" onClick=${toggle}>${ep.enabled ? 'Disable' : 'Enable'}</button>
      <a class="button secondary" data-action="deliveries" href=${`#/webhooks/${encodeURIComponent(ep.id)}`}>Deliveries</a>
    </td>
  </tr>`;
}

export function EndpointsPage() {
  const list = useGet('/v1/webhooks');
  const [secret, setSecret] = useState(null);
  const [notice, setNotice] = useState(null);
  const items = list.data?.items ?? [];
  return html`<section>
    <h1>Webhook endpoints</h1>
    <${CreateEndpoint} setNotice=${setNotice} onCreated=${(ep) => { setSecret({ url: ep.url, value: ep.secret }); list.reload(); }} />
    <${Secret} secret=${secret} onDismiss=${() => setSecret(null)} />
    <${Notice} notice=${notice} />
    ${list.error && html`<p class="notice error">${list.error.message}</p>`}
    ${list.data && items.length === 0 && html`<p class="empty">No endpoints yet: add one to receive each click as a signed webhook.</p>`}
    ${items.length > 0 && html`<div class="table-box"><table id="endpoints" class="stack">
      <thead><tr><th>URL</th><th>Events</th><th>State</th><th></th></tr></thead>
      <tbody>${items.map((ep) => html`<${EndpointRow} key=${ep.id} endpoint=${ep} onChanged=${list.reload} onSecret=${setSecret} setNotice=${setNotice} />`)}</tbody>
    </table></div>`}
  </section>`;
}

/** `datetime-local` input value (local time) to RFC 3339 UTC. */
const toUtc = (local) => (local ? new Date(local).toISOString() : undefined);

function RecoverForm({ path, onRecovered, setNotice }) {
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const body = { since: toUtc(since) };
    if (until) body.until = toUtc(until);
    const r = await attempt(setNotice, () => api('POST', `${path}/recover`, body),
      (r) => `Recovered ${r.recovered} failed deliveries${r.more ? ' (more remain: run it again)' : ''}`);
    if (r) onRecovered();
  };
  return html`<form class="row-form" id="recover" onSubmit=${submit}>
    <label>Since <input name="since" type="datetime-local" step="1" required value=${since} onInput=${(e) => setSince(e.target.value)} /></label>
    <label>Until <input name="until" type="datetime-local" step="1" value=${until} onInput=${(e) => setUntil(e.target.value)} /></label>
    <button type="submit">Recover failed deliveries</button>
  </form>`;
}

export function DeliveriesPage({ id }) {
  const path = `/v1/webhooks/${encodeURIComponent(id)}`;
  const endpoint = useGet(path);
  const [status, setStatus] = useState('');
  const [log, setLog] = useState(null);
  const [tick, setTick] = useState(0);
  const [notice, setNotice] = useState(null);
  const reload = () => setTick((t) => t + 1);
  useEffect(() => {
    let live = true;
    api('GET', `${path}/deliveries${query({ status, limit: 100 })}`).then(
      (page) => live && setLog(page.items),
      (e) => live && setNotice({ error: true, text: e.message }),
    );
    // Deliveries move on their own (retries, the receiver answering): poll while open.
    const timer = setTimeout(reload, 2000);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [path, status, tick]);
  const retry = async (eventId) => {
    const ok = await attempt(setNotice, () => api('POST', `${path}/deliveries/${encodeURIComponent(eventId)}/retry`), `Retrying ${eventId}`);
    if (ok) reload();
  };
  const ep = endpoint.data;
  // The log has a row per attempt, newest first: only an event's newest attempt can be retried.
  const newest = new Set();
  const retryable = (d) => {
    if (newest.has(d.event_id)) return false;
    newest.add(d.event_id);
    return d.status === 'failed';
  };
  return html`<section>
    <p><a href="#/webhooks">← Endpoints</a></p>
    <h1>Deliveries</h1>
    ${ep && html`<p class="url">${ep.url} · <span class=${ep.enabled ? 'good' : 'bad'}>${ep.enabled ? 'enabled' : `disabled${ep.disabled_reason ? `: ${ep.disabled_reason}` : ''}`}</span></p>`}
    <div class="controls">
      <select aria-label="Status" id="status-filter" value=${status} onChange=${(e) => setStatus(e.target.value)}>
        ${[['', 'All statuses'], ['pending', 'Pending'], ['succeeded', 'Succeeded'], ['failed', 'Failed']].map(([v, l]) => html`<option value=${v}>${l}</option>`)}
      </select>
    </div>
    <${Notice} notice=${notice} />
    <h2>Recover by time range</h2>
    <${RecoverForm} path=${path} onRecovered=${reload} setNotice=${setNotice} />
    ${log && log.length === 0 && html`<p class="empty">No deliveries${status ? ` with status ${status}` : ''}.</p>`}
    ${log && log.length > 0 && html`<div class="table-box"><table id="deliveries" class="stack">
      <thead><tr><th>When</th><th>Event</th><th>Attempt</th><th>Status</th><th>Response</th><th>Duration</th><th></th></tr></thead>
      <tbody>${log.map((d) => html`<tr data-event=${d.event_id} data-status=${d.status} key=${`${d.event_id}-${d.attempt}`}>
        <td data-label="When">${fmtTime(d.at)}</td>
        <td data-label="Event"><span class="hint">${d.type}</span> <code title=${d.event_id}>${shortId(d.event_id)}</code></td>
        <td data-label="Attempt" class="num">${d.attempt}</td>
        <td data-label="Status" class=${`status ${d.status === 'succeeded' ? 'good' : d.status === 'failed' ? 'bad' : ''}`}>${d.status}</td>
        <td data-label="Response">${d.status_code ?? d.error ?? '—'}</td>
        <td data-label="Duration" class="num">${d.duration_ms ?? '—'} ms</td>
        <td data-label="" class="actions">${retryable(d) && html`<button class="secondary" data-action="retry" onClick=${() => retry(d.event_id)}>Retry</button>`}</td>
      </tr>`)}</tbody></table></div>`}
  </section>`;
}
