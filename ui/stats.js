// Stats: clicks over time (an SVG bar chart), totals and breakdowns, for the
// account or one link; the link page adds its CSV export and live clicks.
import { html, useState, useEffect, useRef } from './vendor/preact-htm.mjs';
import { api, getKey, query, useGet, fmtTime, Notice, attempt } from './api.js';
import { qrDataUrl } from './links.js';

const RANGES = {
  hour: [['24 hours', 24], ['48 hours', 48], ['7 days', 168]],
  day: [['7 days', 7 * 24], ['30 days', 30 * 24], ['90 days', 90 * 24]],
};
const BREAKDOWNS = [
  ['countries', 'Countries'],
  ['devices', 'Devices'],
  ['browsers', 'Browsers'],
  ['os', 'Operating systems'],
  ['referrers', 'Referrers'],
];

function Chart({ series, interval }) {
  const max = Math.max(1, ...series.map((b) => b.clicks));
  const w = 600;
  const h = 160;
  const step = w / Math.max(1, series.length);
  const label = (at) => (interval === 'hour' ? at.slice(5, 13).replace('T', ' ') + 'h' : at.slice(0, 10));
  return html`<figure class="chart" id="chart" data-clicks=${series.reduce((n, b) => n + b.clicks, 0)}>
    <svg viewBox=${`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label="Clicks over time">
      <line x1="0" y1=${h - 0.5} x2=${w} y2=${h - 0.5} class="axis" />
      ${series.map((b, i) => {
        const bh = (b.clicks / max) * (h - 4);
        return html`<rect x=${i * step + step * 0.1} y=${h - bh} width=${Math.max(1, step * 0.8)} height=${bh} class="bar">
          <title>${label(b.at)}: ${b.clicks}</title></rect>`;
      })}
    </svg>
    <figcaption>
      <span>${series.length ? label(series[0].at) : ''}</span>
      <span>max ${max} per ${interval}</span>
      <span>${series.length ? label(series[series.length - 1].at) : ''}</span>
    </figcaption>
  </figure>`;
}

function Breakdown({ title, rows, id }) {
  const max = Math.max(1, ...rows.map((r) => r.clicks));
  return html`<div class="breakdown" id=${`breakdown-${id}`}>
    <h3>${title}</h3>
    ${rows.length === 0 ? html`<p class="empty">No clicks</p>` : html`<ul>${rows.slice(0, 10).map((r) => html`<li>
      <span class="value">${r.value}</span><span class="num">${r.clicks}</span>
      <span class="meter"><span style=${{ width: `${(100 * r.clicks) / max}%` }}></span></span>
    </li>`)}</ul>`}
  </div>`;
}

/** Interval and range controls, the chart, totals and breakdowns of `path`. */
export function StatsView({ path, refresh = 0 }) {
  const [interval, setIntervalKind] = useState('day');
  const [hours, setHours] = useState(30 * 24);
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const from = new Date(Date.now() - hours * 3600e3).toISOString();
    let live = true;
    api('GET', `${path}${query({ interval, from })}`).then(
      (s) => live && (setStats(s), setError(null)),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [path, interval, hours, refresh]);
  const pickInterval = (next) => {
    setIntervalKind(next);
    setHours(RANGES[next][1][1]);
  };
  return html`<div class="stats">
    <div class="controls">
      <div class="switch" role="group" aria-label="Interval">
        ${['hour', 'day'].map((i) => html`<button class=${interval === i ? 'on' : 'secondary'} data-interval=${i}
          onClick=${() => pickInterval(i)}>${i === 'hour' ? 'Hourly' : 'Daily'}</button>`)}
      </div>
      <select aria-label="Range" id="range" value=${hours} onChange=${(e) => setHours(Number(e.target.value))}>
        ${RANGES[interval].map(([label, h]) => html`<option value=${h}>Last ${label}</option>`)}
      </select>
    </div>
    ${error && html`<p class="notice error">Stats unavailable: ${error.message}</p>`}
    ${stats && html`
      <div class="totals">
        <div><span class="num" id="total">${stats.total}</span> clicks</div>
        <div><span class="num">${stats.humans}</span> humans</div>
        <div><span class="num">${stats.bots}</span> bots</div>
      </div>
      <${Chart} series=${stats.series} interval=${stats.interval} />
      <div class="breakdowns">${BREAKDOWNS.map(([key, title]) => html`<${Breakdown} id=${key} title=${title} rows=${stats[key] ?? []} />`)}</div>`}
  </div>`;
}

/** The account's clicks on `code` as they are stored, over a stream token and EventSource. */
function useLiveClicks(code, onClick) {
  const [status, setStatus] = useState('connecting');
  const [clicks, setClicks] = useState([]);
  const callback = useRef(onClick);
  callback.current = onClick;
  useEffect(() => {
    let source = null;
    let timer = null;
    let closed = false;
    const retry = (ms) => {
      if (!closed) timer = setTimeout(open, ms);
    };
    const open = async () => {
      try {
        const { token } = await api('POST', '/v1/clicks/stream-token');
        if (closed) return;
        source = new EventSource(`/v1/clicks/stream${query({ code, token })}`);
        source.onopen = () => setStatus('live');
        source.addEventListener('click', (e) => {
          const click = JSON.parse(e.data);
          setClicks((cs) => [click, ...cs.filter((c) => c.id !== click.id)].slice(0, 50));
          callback.current(click);
        });
        // The token expires within a minute: reconnect with a fresh one.
        const reopen = () => {
          source.close();
          setStatus('reconnecting');
          retry(2000);
        };
        source.addEventListener('dropped', reopen);
        source.onerror = reopen;
      } catch (e) {
        setStatus(e.status === 404 ? 'unavailable' : 'reconnecting');
        if (e.status !== 404) retry(5000);
      }
    };
    open();
    return () => {
      closed = true;
      source?.close();
      clearTimeout(timer);
    };
  }, [code]);
  return { status, clicks };
}

async function downloadCsv(code) {
  const res = await fetch(`/v1/links/${encodeURIComponent(code)}/clicks?format=csv`, {
    headers: { Authorization: `Bearer ${getKey()}` },
  });
  if (!res.ok || !res.headers.get('content-type')?.startsWith('text/csv')) {
    throw new Error(`CSV export failed: ${res.status} ${res.headers.get('content-type')}`);
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `${code}-clicks.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  const rows = (await blob.text()).trim().split('\n').length - 1;
  return rows;
}

function ClickRows({ clicks }) {
  if (clicks.length === 0) return html`<p class="empty" id="no-clicks">No clicks yet.</p>`;
  return html`<div class="table-box"><table id="clicks" class="stack">
    <thead><tr><th>When</th><th>Country</th><th>Device</th><th>Browser</th><th>OS</th><th>Referrer</th><th>Bot</th></tr></thead>
    <tbody>${clicks.map((c) => html`<tr key=${c.id}>
      <td data-label="When">${fmtTime(c.at)}</td>
      <td data-label="Country">${c.location?.country ?? '--'}</td>
      <td data-label="Device">${c.device}</td>
      <td data-label="Browser">${c.browser}</td>
      <td data-label="OS">${c.os}</td>
      <td data-label="Referrer">${c.referrer_host ?? '(direct)'}</td>
      <td data-label="Bot">${c.is_bot ? 'yes' : 'no'}</td>
    </tr>`)}</tbody></table></div>`;
}

export function LinkPage({ code }) {
  const enc = encodeURIComponent(code);
  const link = useGet(`/v1/links/${enc}`);
  const recent = useGet(`/v1/links/${enc}/clicks?limit=20`);
  const [refresh, setRefresh] = useState(0);
  const [notice, setNotice] = useState(null);
  const pending = useRef(null);
  // A burst of live clicks refreshes the count and chart once a second at most.
  const onClick = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      link.reload();
      setRefresh((r) => r + 1);
    }, 1000);
  };
  useEffect(() => () => clearTimeout(pending.current), []);
  const live = useLiveClicks(code, onClick);
  const seen = new Set(live.clicks.map((c) => c.id));
  const clicks = [...live.clicks, ...(recent.data?.items ?? []).filter((c) => !seen.has(c.id))].slice(0, 50);
  const l = link.data;
  return html`<section>
    <p><a href="#/links">← Links</a></p>
    <h1>${code}</h1>
    ${link.error && html`<p class="notice error">${link.error.message}</p>`}
    ${l && html`<div class="link-head">
      <div>
        <p><a href=${l.short_url} target="_blank" rel="noopener noreferrer">${l.short_url}</a> → <span class="url">${l.destination}</span></p>
        <p class="facts"><span><span class="num" id="click-count">${l.click_count}</span> clicks ever</span>
          <span class=${l.disabled ? 'bad' : 'good'}>${l.disabled ? 'disabled' : 'active'}</span>
          <span>${l.tags.map((t) => html`<span class="tag">${t}</span>`)}</span></p>
        <p class="buttons">
          <button class="secondary" id="csv" onClick=${() => attempt(setNotice, () => downloadCsv(code), (n) => `Downloaded ${n} clicks as CSV`)}>Download CSV</button>
          <button class="secondary" id="refresh" onClick=${() => { link.reload(); recent.reload(); setRefresh((r) => r + 1); }}>Refresh</button>
        </p>
        <${Notice} notice=${notice} />
      </div>
      <img class="qr" src=${qrDataUrl(l.short_url)} alt=${`QR code of ${l.short_url}`} />
    </div>`}
    <h2>Clicks over time</h2>
    <${StatsView} path=${`/v1/links/${enc}/stats`} refresh=${refresh} />
    <h2>Clicks <span class=${`live ${live.status}`} id="live-status">${live.status}</span></h2>
    <${ClickRows} clicks=${clicks} />
  </section>`;
}
