// Files need the session's Authorization header, which <img src> cannot
// send: images are fetched with it and shown from blob: URLs (kept for
// the page's life, at most 200 of them).

import type { ChatStore, FileInfo } from "@switchboard-chat/client";

const urls = new Map<string, Promise<string>>();
const MAX = 200;

/** A blob: URL of the file, fetched once. */
export function blobURL(store: ChatStore, f: FileInfo): Promise<string> {
  let p = urls.get(f.id);
  if (!p) {
    p = store.client.download(f.url).then((b) => URL.createObjectURL(b));
    p.catch(() => urls.delete(f.id));
    urls.set(f.id, p);
    if (urls.size > MAX) {
      const [oldest, op] = urls.entries().next().value as [string, Promise<string>];
      urls.delete(oldest);
      void op.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return p;
}

/** Saves a file to the user's disk (a download with the session's credentials). */
export async function download(store: ChatStore, f: FileInfo): Promise<void> {
  const url = await blobURL(store, f);
  const a = document.createElement("a");
  a.href = url;
  a.download = f.name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}
