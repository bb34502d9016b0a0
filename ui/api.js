// The /v1 API as the dashboard calls it: the API key from sessionStorage as a
// Bearer token, JSON in and out, errors as ApiError with the server's message.
import { html, useState, useEffect, useCallback } from './vendor/preact-htm.mjs';

const KEY = 'relurl.api_key';

export const getKey = () => sessionStorage.getItem(KEY);
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const clearKey = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, message, field) {
    super(field ? `${message} (${field})` : message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${getKey() ?? ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && getKey()) {
    // A revoked or mistyped key: back to the sign-in form.
    clearKey();
    window.dispatchEvent(new Event('relurl-signed-out'));
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const error = data?.error ?? {};
    throw new ApiError(res.status, error.message ?? `${res.status} ${res.statusText}`, error.field);
  }
  return data;
}

/** A query string from the non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** `{data, error, loading, reload}` of `GET path`, reloaded when `path` changes. */
export function useGet(path) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    api('GET', path).then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export const fmtTime = (s) => (s ? new Date(s).toISOString().replace('T', ' ').slice(0, 19) : '—');

/** A one-line result of the last action: ok or error. */
export function Notice({ notice }) {
  if (!notice) return null;
  return html`<p class=${notice.error ? 'notice error' : 'notice ok'} role="status">${notice.text}</p>`;
}

/** Runs `action`, turning its outcome into a notice. */
export async function attempt(setNotice, action, okText) {
  try {
    const result = await action();
    const text = typeof okText === 'function' ? okText(result) : okText;
    if (text) setNotice({ text });
    return result;
  } catch (e) {
    setNotice({ error: true, text: e.message });
    return undefined;
  }
}
