// A browser's sign-in at a relying party (samverkan's pages) through provider.mjs, with
// no browser: the RP's own state, nonce and PKCE are left as the RP made them.
//
//   node browse.mjs --start http://127.0.0.1:PORT/login/oidc --user soc1
//       [--tamper-state] [--drop-cookies]
//
// GETs --start, follows to the provider, answers its dev login and consent forms, and
// calls the RP's callback (with the RP's cookies, unless --drop-cookies; with another
// state, if --tamper-state). Prints one JSON line: {"status", "location", "set_cookie",
// "callback"} of the callback's answer. Exits non-zero only when the provider's side
// breaks.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    start: { type: 'string' },
    user: { type: 'string' },
    'tamper-state': { type: 'boolean', default: false },
    'drop-cookies': { type: 'boolean', default: false },
  },
});
if (!opt.start || !opt.user) {
  console.error('usage: node browse.mjs --start URL --user NAME [--tamper-state] [--drop-cookies]');
  process.exit(2);
}
const fail = (msg) => { console.error(`browse.mjs: ${msg}`); process.exit(1); };

// One cookie jar per origin (host:port), as a browser keeps them.
const jars = new Map();
const jarOf = (url) => {
  const key = new URL(url).host;
  if (!jars.has(key)) jars.set(key, new Map());
  return jars.get(key);
};
async function request(url, init = {}, { cookies = true } = {}) {
  const jar = jarOf(url);
  const res = await fetch(url, {
    ...init,
    redirect: 'manual',
    headers: { ...init.headers, ...(cookies ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {}) },
  });
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(';');
    const i = pair.indexOf('=');
    const [name, value] = [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
    const expired = attrs.some((a) => /^\s*(max-age=0|expires=thu, 01 jan 1970)/i.test(a));
    if (!value || expired) jar.delete(name); else jar.set(name, value);
  }
  return res;
}

const rp = new URL(opt.start);
const first = await request(opt.start);
if (first.status < 300 || first.status >= 400) fail(`the RP answered ${first.status} to --start, not a redirect`);
let res = await request(new URL(first.headers.get('location'), opt.start));
let callback;
for (let step = 0; step < 20 && !callback; step += 1) {
  if (res.status >= 300 && res.status < 400) {
    const next = new URL(res.headers.get('location'), res.url);
    if (next.host === rp.host) callback = next;
    else res = await request(next);
    continue;
  }
  const html = await res.text();
  const prompt = html.match(/name="prompt" value="(\w+)"/)?.[1];
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  if (res.status !== 200 || !prompt || !action) fail(`unexpected page ${res.status} at ${res.url}: ${html.slice(0, 300)}`);
  const form = prompt === 'login' ? { prompt, login: opt.user, password: 'any' } : { prompt };
  res = await request(new URL(action.replaceAll('&amp;', '&'), res.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
}
if (!callback) fail('the provider never sent the browser back to the RP');
if (opt['tamper-state']) callback.searchParams.set('state', randomBytes(32).toString('base64url'));
const back = await request(callback, {}, { cookies: !opt['drop-cookies'] });
process.stdout.write(`${JSON.stringify({
  status: back.status,
  location: back.headers.get('location'),
  set_cookie: back.headers.getSetCookie(),
  callback: callback.href,
})}\n`);
