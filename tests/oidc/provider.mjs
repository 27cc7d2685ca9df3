// A real OpenID Provider (panva's oidc-provider) for samverkan's integration tests.
//
//   node provider.mjs --port 0 --keys jwks.json [--issuer-path /x]
//
// Prints exactly one line to stdout when it listens: `READY <issuer>`;
// everything else (oidc-provider's notices, reloads, errors) goes to stderr.
// SIGHUP re-reads the keys file and swaps the keys in place (same port, same
// issuer, sessions kept); `RELOADED kids=...` is then written to stderr, and a
// test can also poll jwks_uri until the new kid shows up.
//
// Env: OIDC_REDIRECT_URIS (comma-separated; default
// http://127.0.0.1:8080/auth/oidc/callback), OIDC_RESOURCE (access-token
// audience; default samverkan-api).
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';
// Not exported by the package's index, but its file is public (no "exports"
// map) and the version is pinned: see `adapter` below for why.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

// oidc-provider prints some notices with console.info, i.e. to stdout: keep
// stdout for the READY line alone, so a test can read it as the first line.
console.info = console.log = console.error;
// A test that reads READY and drops its end of the pipe must not kill us.
process.stdout.on('error', () => {});

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    keys: { type: 'string' },
    'issuer-path': { type: 'string', default: '' },
  },
});
if (!opt.keys) {
  console.error('usage: node provider.mjs --port N --keys jwks.json [--issuer-path /x]');
  process.exit(2);
}
// "/x/" and "x" both mean "/x"; "" or "/" mean no path.
const issuerPath = `/${opt['issuer-path'].replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '');
const redirectUris = (process.env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:8080/auth/oidc/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
// The audience of access tokens. A resource indicator must be an absolute URI
// (RFC 8707; oidc-provider rejects `samverkan-api`), so a bare name is
// requested as `urn:<name>`; both forms resolve to this audience.
const AUDIENCE = process.env.OIDC_RESOURCE || 'samverkan-api';
const RESOURCE = URL.canParse(AUDIENCE) ? AUDIENCE : `urn:${AUDIENCE}`;
// Fixed, so that cookies signed before a key reload still verify after it.
const COOKIE_KEYS = ['samverkan-oidc-test-cookie-key'];

function readKeys() {
  const jwks = JSON.parse(readFileSync(opt.keys, 'utf8'));
  if (!Array.isArray(jwks.keys) || !jwks.keys.length) throw new Error(`${opt.keys}: no keys`);
  for (const k of jwks.keys) {
    if (!k.alg || !k.kid) throw new Error(`${opt.keys}: every key needs alg and kid`);
  }
  return jwks;
}

// One Provider per key set: oidc-provider fixes its keystore (and the signing
// algorithms it advertises) at construction, so a reload builds a new one and
// the HTTP server switches to it. oidc-provider's default in-memory store is
// per Provider, so `adapter` hands every Provider the module-global one
// instead: sessions, interactions, grants and codes survive the switch.
function buildProvider(issuer, jwks) {
  // The first key signs (ID tokens and access tokens); all keys are published.
  const { alg, kid } = jwks.keys[0];
  return new Provider(issuer, {
    jwks,
    adapter: (model) => new MemoryAdapter(model), // no store given = the shared one
    cookies: { keys: COOKIE_KEYS },
    clients: [{
      client_id: 'samverkan',
      client_secret: 'samverkan-test-secret',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // client_secret_post is accepted as well: oidc-provider lets either
      // secret method through for a client registered with one of them.
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg,
    }],
    clientDefaults: { id_token_signed_response_alg: alg },
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 knows
    responseTypes: ['code'],
    // Explicit lifetimes (seconds), which also quiets the "default ttl" notices.
    ttl: {
      AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600,
      Grant: 86400, Session: 86400, RefreshToken: 86400,
    },
    scopes: ['openid', 'profile', 'offline_access'],
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    // Any login name is an account; its sub and preferred_username are that name.
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, preferred_username: sub }),
    }),
    // Scope claims in the ID token itself, not only at userinfo.
    conformIdTokenClaims: false,
    extraTokenClaims: (_ctx, token) => (token.kind === 'AccessToken'
      ? { preferred_username: token.accountId } : undefined),
    features: {
      devInteractions: { enabled: true }, // login form taking any name; consent form
      resourceIndicators: {
        enabled: true,
        // Requests without `resource` (as a plain RP sends) still get the API token.
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== RESOURCE && indicator !== AUDIENCE) {
            throw new errors.InvalidTarget();
          }
          return {
            audience: AUDIENCE,
            scope: 'openid profile',
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg, kid } },
          };
        },
      },
    },
  });
}

const jwks0 = readKeys(); // fail early, before listening, on a bad file
let handler;
// How often the key set was fetched: a test checks that a flood of unknown kids does
// not hammer the provider (GET /__jwks_hits, outside the issuer's paths).
let jwksHits = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/__jwks_hits') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(String(jwksHits));
    return;
  }
  if (req.url.split('?')[0].endsWith('/jwks')) jwksHits += 1;
  if (issuerPath) {
    // Mount the provider under the issuer path the way express would: it
    // finds its mount path from originalUrl minus url.
    const rest = req.url.slice(issuerPath.length);
    if (!req.url.startsWith(issuerPath) || (rest && !/^[/?]/.test(rest))) {
      res.writeHead(404).end();
      return;
    }
    req.originalUrl = req.url;
    req.url = rest.startsWith('/') ? rest : `/${rest}`;
  }
  handler(req, res);
});

server.listen(Number(opt.port), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}${issuerPath}`;
  const install = (jwks) => { handler = buildProvider(issuer, jwks).callback(); };
  install(jwks0);
  process.on('SIGHUP', () => {
    try {
      const jwks = readKeys();
      install(jwks);
      console.error(`RELOADED kids=${jwks.keys.map((k) => k.kid).join(',')}`);
    } catch (e) {
      console.error(`RELOAD FAILED, old keys kept: ${e.message}`);
    }
  });
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (e) => { console.error(e.message); process.exit(1); });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
