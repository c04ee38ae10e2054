// Talks to `kvmnet serve` on the page's own origin: the session cookie goes with every request,
// and every write carries the CSRF token from GET /api/session.
import type { ApiErrorBody, OpResult, Session } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.message);
  }
}

let csrf = '';

/** null: not signed in (401). */
export async function loadSession(): Promise<Session | null> {
  const res = await fetch('/api/session', { headers: { Accept: 'application/json' } });
  if (res.status === 401) return null;
  if (!res.ok) throw await toError(res);
  const session = (await res.json()) as Session;
  csrf = session.csrf;
  return session;
}

async function toError(res: Response): Promise<ApiError> {
  let body: ApiErrorBody = { code: `http-${res.status}`, message: `${res.status} ${res.statusText}` };
  try {
    const j = (await res.json()) as Partial<ApiErrorBody>;
    if (typeof j.message === 'string') body = { ...body, ...j };
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, body);
}

export type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A write; resolves to the operation result, rejects with ApiError. */
export async function write(method: Method, path: string, body?: unknown): Promise<OpResult> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: { 'Content-Type': 'application/json', 'X-Kvmnet-Csrf': csrf, Accept: 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (e) {
    throw new ApiError(0, {
      code: 'unreachable',
      message: `cannot reach kvmnet serve (${e instanceof Error ? e.message : String(e)})`,
      hint: 'is `kvmnet serve` still running?',
    });
  }
  if (!res.ok) throw await toError(res);
  const text = await res.text();
  return (text ? JSON.parse(text) : { dryRun: false, definitions: [], plans: [], notes: [] }) as OpResult;
}

export function withQuery(path: string, q: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, v);
  const qs = p.toString();
  return qs ? `${path}?${qs}` : path;
}
