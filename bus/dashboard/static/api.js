// The JSON API as the signed-in client: a bearer token from POST /v1/oauth/token, kept in this
// tab's sessionStorage (gone when the tab closes); the secret itself is never stored.

const SESSION_KEY = "lienthong.dashboard.session";
// Give the token up a little before the bus would refuse it, not in the middle of a refresh.
const EXPIRY_MARGIN_MS = 15_000;

/** An answer other than 2xx: its status and the problem document's detail. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export function session() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (stored && typeof stored.token === "string" && Date.now() < stored.expiresAt) {
      return stored;
    }
  } catch {
    // A session written by another version of the page: sign in again.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** Trade the client's id and secret for a token (OAuth2 client credentials, form body). */
export async function signIn(clientId, clientSecret) {
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: clientId,
    client_secret: clientSecret,
  });
  const answer = await fetch("../v1/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form,
    credentials: "omit",
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    throw new ApiError(answer.status, body.error_description || body.error || answer.statusText);
  }
  const stored = {
    clientId,
    token: body.access_token,
    expiresAt: Date.now() + body.expires_in * 1000 - EXPIRY_MARGIN_MS,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
  return stored;
}

async function call(method, path, body) {
  const current = session();
  if (current === null) throw new ApiError(401, "no session");
  const headers = { Authorization: `Bearer ${current.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(`../${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const parsed = await answer.json().catch(() => null);
  if (!answer.ok) {
    if (answer.status === 401) signOut();
    const detail = parsed?.detail || parsed?.title || answer.statusText;
    throw new ApiError(answer.status, String(detail));
  }
  return parsed;
}

/** GET a route of the API (``path`` without the leading slash) with query parameters. */
export function getJson(path, params = {}) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, value]) => value !== null && value !== undefined),
  );
  const suffix = query.size ? `?${query}` : "";
  return call("GET", `${path}${suffix}`);
}

export function postJson(path, body) {
  return call("POST", path, body);
}
