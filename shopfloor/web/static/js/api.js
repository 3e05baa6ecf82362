// HTTP calls to the platform's API. Every page goes through here, so a failing platform is noticed in one place.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const listeners = new Set();

/** Called with true/false whenever a request reaches or fails to reach the platform. */
export function onReachability(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function report(ok) {
  for (const fn of listeners) fn(ok);
}

/** GET a JSON endpoint; params may hold arrays (repeated keys). Throws ApiError. */
export async function getJSON(path, params = {}, { signal } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    report(false);
    throw new ApiError("the platform cannot be reached", 0);
  }
  if (response.status === 503 || response.status === 502) {
    report(false);
    throw new ApiError("the platform is starting or stopping", response.status);
  }
  report(true);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** POST (or another method) a JSON body; the answer's JSON. Throws ApiError (401: log in again, 403: not allowed). */
export async function sendJSON(path, body = {}, { method = "POST" } = {}) {
  let response;
  try {
    response = await fetch(new URL(path, window.location.origin), {
      method, headers: { Accept: "application/json", "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch {
    report(false);
    throw new ApiError("the platform cannot be reached", 0);
  }
  if (response.status === 503 || response.status === 502) {
    report(false);
    throw new ApiError("the platform is starting or stopping", response.status);
  }
  report(true);
  if (!response.ok) throw await failure(response);
  return response.json();
}

async function failure(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch { /* not JSON */ }
  // A session that ended (expired, revoked, the user disabled): the shell shows the login form again.
  if (response.status === 401) window.dispatchEvent(new CustomEvent("authrequired", { detail }));
  return new ApiError(detail, response.status);
}
