// Headless authorization-code login against provider.mjs, no browser. Two modes:
//
// 1. As its own client:
//
//   node login.mjs --issuer URL --user polis1 [--resource samverkan-api]
//       [--auth basic|post] [--scope "openid profile"] [--redirect-uri URI]
//
// Discovery, /auth with PKCE (S256) + state + nonce, the dev login and consent
// forms answered over plain HTTP (cookies carried by hand), code exchange.
// Prints one JSON line {"access_token": ..., "id_token": ...} to stdout.
// The redirect URI is never fetched: the code is read from the Location header.
//
// 2. As a browser at a relying party (samverkan's pages), end to end:
//
//   node login.mjs --start http://127.0.0.1:PORT/login/oidc --user polis1
//       [--tamper-state] [--drop-cookies] [--issuer URL]
//
// GETs --start (no redirects followed), which must redirect (302/303) to the
// provider's authorization endpoint; the RP's own state, nonce, PKCE and
// redirect_uri are left exactly as the RP made them. Answers the provider's
// dev login and consent forms as mode 1 does, until the provider redirects to
// that redirect_uri; then GETs the callback on the RP with the RP's cookies
// (no redirects followed) and prints one JSON line:
//   {"status": N, "location": "..."|null, "set_cookie": [...], "callback": "<URL called>"}
// --tamper-state puts another random state into the callback URL;
// --drop-cookies calls the callback without any cookie. With --issuer, the
// first redirect must go to that issuer's authorization_endpoint exactly.
// Exits 0 whatever the RP answers at the callback (the test asserts that);
// non-zero only when the harness's side breaks (the RP's start is no redirect
// to an authorization request, a provider page it cannot answer, ...).
//
// Cookies: one jar per host:port (the RP and the provider both live on
// 127.0.0.1 and must not see each other's cookies), with RFC 6265 paths (a
// cookie set without Path gets the directory of the setting URL, as in a
// browser), Max-Age/Expires removal. Domain and Secure are ignored
// (http://127.0.0.1 is a secure context to browsers).
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    issuer: { type: 'string' },
    user: { type: 'string' },
    resource: { type: 'string' },
    auth: { type: 'string', default: 'basic' },
    scope: { type: 'string', default: 'openid profile' },
    'redirect-uri': { type: 'string' },
    'client-id': { type: 'string', default: 'samverkan' },
    'client-secret': { type: 'string', default: 'samverkan-test-secret' },
    start: { type: 'string' },
    'tamper-state': { type: 'boolean', default: false },
    'drop-cookies': { type: 'boolean', default: false },
  },
});
const rpMode = opt.start !== undefined;
if (!opt.user || !['basic', 'post'].includes(opt.auth)
  || (rpMode ? !URL.canParse(opt.start) : (!opt.issuer || opt['tamper-state'] || opt['drop-cookies']))) {
  console.error('usage: node login.mjs --issuer URL --user NAME [--resource R] [--auth basic|post]\n'
    + '       node login.mjs --start RP_LOGIN_URL --user NAME [--tamper-state] [--drop-cookies] [--issuer URL]');
  process.exit(2);
}
const fail = (msg) => { console.error(`login.mjs: ${msg}`); process.exit(1); };
const warn = (msg) => console.error(`login.mjs: warning: ${msg}`);
const b64url = (buf) => buf.toString('base64url');

async function discover(issuer) {
  const iss = issuer.replace(/\/$/, '');
  const res = await fetch(`${iss}/.well-known/openid-configuration`).catch((e) => fail(`discovery: ${e.message}`));
  if (!res.ok) fail(`discovery ${res.status} at ${iss}`);
  const disco = await res.json();
  if (disco.issuer !== iss) fail(`discovery issuer ${disco.issuer} != ${issuer}`);
  return disco;
}

// --- Cookie jars: host:port -> Map(name + path -> {name, value, path, sameSite}) ---
const jars = new Map();
const jarOf = (url) => {
  if (!jars.has(url.host)) jars.set(url.host, new Map());
  return jars.get(url.host);
};
// RFC 6265 5.1.4: the default path is the request path up to its last '/'.
const defaultPath = ({ pathname: p }) => (p.lastIndexOf('/') <= 0 ? '/' : p.slice(0, p.lastIndexOf('/')));
const pathMatches = (reqPath, cookiePath) => reqPath === cookiePath
  || (reqPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/'));

function storeCookies(url, res) {
  const jar = jarOf(url);
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    if (i < 0 || !name) continue; // ignored by browsers too
    const value = pair.slice(i + 1).trim();
    let path = defaultPath(url);
    let maxAge = null;
    let expires = null;
    let sameSite = null;
    for (const a of attrs) {
      const j = a.indexOf('=');
      const k = (j < 0 ? a : a.slice(0, j)).trim().toLowerCase();
      const v = j < 0 ? '' : a.slice(j + 1).trim();
      if (k === 'path' && v.startsWith('/')) path = v;
      else if (k === 'max-age' && /^-?\d+$/.test(v)) maxAge = Number(v);
      else if (k === 'expires' && !Number.isNaN(Date.parse(v))) expires = Date.parse(v);
      else if (k === 'samesite') sameSite = v.toLowerCase();
    }
    const key = `${name}\0${path}`;
    const expired = maxAge !== null ? maxAge <= 0 : expires !== null && expires <= Date.now();
    if (expired) jar.delete(key); else jar.set(key, { name, value, path, sameSite });
  }
}

const cookiesFor = (url) => [...jarOf(url).values()]
  .filter((c) => pathMatches(url.pathname, c.path))
  .sort((a, b) => b.path.length - a.path.length); // longer paths first, as browsers send them

// One HTTP exchange, no redirects followed; cookies sent from and stored into the jar.
async function request(url, init = {}, { cookies = true } = {}) {
  const sent = cookies ? cookiesFor(url) : [];
  const headers = { ...init.headers };
  if (sent.length) headers.cookie = sent.map((c) => `${c.name}=${c.value}`).join('; ');
  const res = await fetch(url, { ...init, redirect: 'manual', headers })
    .catch((e) => fail(`${init.method || 'GET'} ${url}: ${e.cause?.message || e.message}`));
  storeCookies(url, res);
  return res;
}

// Follows the provider's redirects by hand, answering each dev interaction form
// (login as --user, then consent), until the provider sends the browser to a
// URL for which isCallback() holds; returns that URL (not fetched).
async function driveProvider(authUrl, isCallback) {
  let url = new URL(authUrl);
  let res = await request(url);
  for (let step = 0; step < 20; step += 1) {
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      if (!loc) fail(`${res.status} without Location at ${url}`);
      const next = new URL(loc, url);
      if (isCallback(next)) return next;
      url = next;
      res = await request(url);
      continue;
    }
    const html = await res.text();
    const prompt = html.match(/name="prompt" value="(\w+)"/)?.[1];
    const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
    if (res.status !== 200 || !prompt || !action) fail(`unexpected page ${res.status} at ${url}: ${html.slice(0, 500)}`);
    const form = prompt === 'login'
      ? { prompt, login: opt.user, password: 'any' } // dev interactions take any password
      : { prompt }; // consent: grant what is asked
    url = new URL(action.replaceAll('&amp;', '&'), url);
    res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
  }
  return fail('no redirect to the client after 20 steps');
}

if (rpMode) await asBrowserAtRp(); else await asClient();

async function asBrowserAtRp() {
  const start = new URL(opt.start);
  const first = await request(start);
  await first.body?.cancel();
  const loc = first.headers.get('location');
  if (![302, 303].includes(first.status) || !loc) {
    fail(`the RP answered ${first.status}${loc ? ` (Location ${loc})` : ''} to --start, not a 302/303 to the provider`);
  }
  const authUrl = new URL(loc, start);
  const q = authUrl.searchParams;
  for (const k of ['response_type', 'client_id', 'redirect_uri']) {
    if (!q.get(k)) fail(`the RP's redirect is no authorization request (no ${k}): ${authUrl}`);
  }
  if (!['query', null].includes(q.get('response_mode'))) fail(`response_mode ${q.get('response_mode')} is not supported`);
  if (opt.issuer) {
    const { authorization_endpoint: ep } = await discover(opt.issuer);
    if (`${authUrl.origin}${authUrl.pathname}` !== ep) fail(`the RP redirected to ${authUrl.origin}${authUrl.pathname}, not ${ep}`);
  }
  if (!URL.canParse(q.get('redirect_uri'))) fail(`redirect_uri is no absolute URL: ${q.get('redirect_uri')}`);
  const back = new URL(q.get('redirect_uri'));
  if (back.host !== start.host) warn(`redirect_uri ${back} is not on the host of --start (${start.host}); its cookies are not sent there`);

  const callback = await driveProvider(authUrl, (u) => u.origin === back.origin && u.pathname === back.pathname);
  if (callback.searchParams.get('error')) {
    warn(`the provider answered the RP with error=${callback.searchParams.get('error')}: ${callback.searchParams.get('error_description')}`);
  }
  if (opt['tamper-state']) {
    // Replace only the state pair, leaving every other byte of the query as the provider wrote it.
    const was = callback.searchParams.get('state');
    let forged;
    do forged = b64url(randomBytes(32)); while (forged === was);
    const pairs = callback.search.slice(1).split('&').filter(Boolean);
    const at = pairs.findIndex((p) => /^state(=|$)/.test(p));
    if (at < 0) pairs.push(`state=${forged}`); else pairs[at] = `state=${forged}`;
    callback.search = pairs.join('&');
  }
  if (!opt['drop-cookies']) {
    for (const c of cookiesFor(callback)) {
      if (c.sameSite === 'strict') {
        warn(`cookie ${c.name} is SameSite=Strict: a browser coming back from a provider on another site would not send it`);
      }
    }
  }
  const res = await request(callback, {}, { cookies: !opt['drop-cookies'] });
  await res.body?.cancel();
  process.stdout.write(`${JSON.stringify({
    status: res.status,
    location: res.headers.get('location'),
    set_cookie: res.headers.getSetCookie(),
    callback: callback.href,
  })}\n`);
}

async function asClient() {
  const redirectUri = opt['redirect-uri']
    || (process.env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:8080/auth/oidc/callback').split(',')[0].trim();
  const disco = await discover(opt.issuer);

  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const authUrl = new URL(disco.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    response_type: 'code',
    client_id: opt['client-id'],
    redirect_uri: redirectUri,
    scope: opt.scope,
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    // Resource indicators must be absolute URIs; a bare name means urn:<name>
    // (the provider maps both to the same audience).
    ...(opt.resource ? { resource: URL.canParse(opt.resource) ? opt.resource : `urn:${opt.resource}` } : {}),
  });

  const callback = await driveProvider(authUrl, (u) => u.href.startsWith(redirectUri));
  const p = callback.searchParams;
  if (p.get('error')) fail(`authorization error: ${p.get('error')}: ${p.get('error_description')}`);
  if (p.get('state') !== state) fail('state mismatch');

  // Code exchange, authenticating the client as asked.
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: p.get('code'),
    redirect_uri: redirectUri,
    code_verifier: verifier,
  });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (opt.auth === 'post') {
    body.set('client_id', opt['client-id']);
    body.set('client_secret', opt['client-secret']);
  } else {
    const enc = encodeURIComponent; // RFC 6749 2.3.1: form-encode, then Basic
    headers.authorization = `Basic ${Buffer.from(`${enc(opt['client-id'])}:${enc(opt['client-secret'])}`).toString('base64')}`;
  }
  const tokRes = await fetch(disco.token_endpoint, { method: 'POST', headers, body });
  const tok = await tokRes.json();
  if (!tokRes.ok) fail(`token endpoint ${tokRes.status}: ${JSON.stringify(tok)}`);
  const idPayload = JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url'));
  if (idPayload.nonce !== nonce) fail('nonce mismatch in id_token');
  process.stdout.write(`${JSON.stringify({ access_token: tok.access_token, id_token: tok.id_token })}\n`);
}
