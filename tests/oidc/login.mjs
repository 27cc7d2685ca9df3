// Headless authorization-code login against provider.mjs, no browser:
//
//   node login.mjs --issuer URL --user polis1 [--resource samverkan-api]
//       [--auth basic|post] [--scope "openid profile"] [--redirect-uri URI]
//
// Discovery, /auth with PKCE (S256) + state + nonce, the dev login and consent
// forms answered over plain HTTP (cookies carried by hand), code exchange.
// Prints one JSON line {"access_token": ..., "id_token": ...} to stdout.
// The redirect URI is never fetched: the code is read from the Location header.
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
  },
});
if (!opt.issuer || !opt.user || !['basic', 'post'].includes(opt.auth)) {
  console.error('usage: node login.mjs --issuer URL --user NAME [--resource R] [--auth basic|post]');
  process.exit(2);
}
const fail = (msg) => { console.error(`login.mjs: ${msg}`); process.exit(1); };
const redirectUri = opt['redirect-uri']
  || (process.env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:8080/auth/oidc/callback').split(',')[0].trim();
const b64url = (buf) => buf.toString('base64url');

const disco = await (await fetch(`${opt.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)).json();
if (disco.issuer !== opt.issuer.replace(/\/$/, '')) fail(`discovery issuer ${disco.issuer} != ${opt.issuer}`);

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

// A minimal cookie jar: name -> value, sent on every request to the issuer.
// Enough for oidc-provider's _session/_interaction/_interaction_resume cookies.
const jar = new Map();
async function request(url, init = {}) {
  const res = await fetch(url, {
    ...init,
    redirect: 'manual',
    headers: { ...init.headers, cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
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

// Follow redirects by hand, answering each dev interaction form, until the
// provider sends us to the client's redirect URI.
let res = await request(authUrl);
let callback;
for (let step = 0; step < 20 && !callback; step += 1) {
  if (res.status >= 300 && res.status < 400) {
    const next = new URL(res.headers.get('location'), res.url || authUrl);
    if (next.href.startsWith(redirectUri)) callback = next;
    else res = await request(next);
    continue;
  }
  const html = await res.text();
  const prompt = html.match(/name="prompt" value="(\w+)"/)?.[1];
  const action = html.match(/<form[^>]*action="([^"]+)"/)?.[1];
  if (res.status !== 200 || !prompt || !action) fail(`unexpected page ${res.status} at ${res.url}: ${html.slice(0, 500)}`);
  const form = prompt === 'login'
    ? { prompt, login: opt.user, password: 'any' } // dev interactions take any password
    : { prompt }; // consent: grant what is asked
  res = await request(new URL(action.replaceAll('&amp;', '&'), res.url || authUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
}
if (!callback) fail('no redirect to the client after 20 steps');
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
