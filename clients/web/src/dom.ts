// The page's one DOM helper: elements built from data, text always set as
// text (never parsed as HTML), so a message body cannot inject markup.

type Child = Node | string | false | null | undefined;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; attrs?: Record<string, string>; on?: Record<string, (e: Event) => void> } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  for (const [k, f] of Object.entries(props.on ?? {})) node.addEventListener(k, f);
  for (const c of children) if (c) node.append(c);
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

export function names(users: string[]): string {
  if (users.length <= 1) return users.join("");
  return `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]}`;
}
