// Who is signed in: the token kept in this browser, and the user it names.

const KEY = "chat.token";

export const savedToken = (): string | null => localStorage.getItem(KEY);
export const saveToken = (token: string) => localStorage.setItem(KEY, token);
export const forgetToken = () => localStorage.removeItem(KEY);

/** The user a JWT names (`sub`); the gateway checks the signature. */
export function userOf(token: string): string {
  const payload = token.split(".")[1];
  if (!payload) throw new Error("that is not a JWT");
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  const sub = (JSON.parse(json) as { sub?: unknown }).sub;
  if (typeof sub !== "string" || !sub) throw new Error("the token names no user (sub)");
  return sub;
}

/** Asks this gateway for a ticket: the same check a socket gets, so a bad
 * token is reported at sign-in rather than as endless reconnects. */
export async function check(token: string): Promise<void> {
  const res = await fetch("/v1/ws/ticket", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`the gateway refused that token (HTTP ${res.status})`);
}
