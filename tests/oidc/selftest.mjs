// Checks provider.mjs, login.mjs (both modes) and make-keys.mjs together:
// `node --test selftest.mjs` (or `npm test`). Needs only loopback; takes a few seconds.
import { strict as assert } from 'node:assert';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

const here = import.meta.dirname;
const dir = mkdtempSync(join(tmpdir(), 'oidc-selftest-'));
const children = new Set();
after(() => {
  for (const c of children) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

function makeKeys(alg, kid, out, append = false) {
  execFileSync('node', [join(here, 'make-keys.mjs'), '--alg', alg, '--kid', kid, '--out', out,
    ...(append ? ['--append'] : [])]);
}

// Starts the provider and resolves with its issuer once READY is printed.
async function startProvider(keys, extra = [], env = {}) {
  const child = spawn('node', [join(here, 'provider.mjs'), '--port', '0', '--keys', keys, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(d));
  const lines = createInterface({ input: child.stdout });
  const [first] = await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => { throw new Error(`provider died: ${Buffer.concat(stderr)}`); }),
  ]);
  const m = /^READY (http:\/\/127\.0\.0\.1:\d+\S*)$/.exec(first);
  assert.ok(m, `first stdout line: ${first}`);
  return { child, issuer: m[1], stderr };
}

function login(issuer, ...args) {
  return JSON.parse(execFileSync('node', [join(here, 'login.mjs'), '--issuer', issuer, '--user', 'polis1', ...args]));
}

async function jwksOf(issuer) {
  const disco = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(disco.issuer, issuer);
  return (await fetch(disco.jwks_uri)).json();
}

// Verifies the access token against the published keys and checks its claims.
async function checkAccessToken(issuer, token, alg, kid) {
  const jwks = await jwksOf(issuer);
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer, audience: 'samverkan-api', algorithms: [alg],
  });
  assert.equal(protectedHeader.alg, alg);
  assert.equal(protectedHeader.kid, kid);
  assert.equal(payload.preferred_username, 'polis1');
  assert.equal(payload.sub, 'polis1');
  assert.ok(payload.exp > Date.now() / 1000);
  console.log(`# ${alg} header ${JSON.stringify(protectedHeader)}`);
  console.log(`# ${alg} payload ${JSON.stringify(payload)}`);
  return payload;
}

for (const alg of ['RS256', 'ES256', 'EdDSA']) {
  test(`${alg}: token signed with the key's alg and kid, public JWKS only`, async () => {
    const keys = join(dir, `${alg}.json`);
    makeKeys(alg, `k-${alg}`, keys);
    const { child, issuer } = await startProvider(keys);
    const jwks = await jwksOf(issuer);
    assert.deepEqual(jwks.keys.map((k) => [k.kid, k.alg]), [[`k-${alg}`, alg]]);
    for (const k of jwks.keys) for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(priv in k));
    const { access_token: at, id_token: idt } = login(issuer);
    await checkAccessToken(issuer, at, alg, `k-${alg}`);
    const { payload: id } = await jwtVerify(idt, createLocalJWKSet(jwks), { issuer, audience: 'samverkan' });
    assert.equal(id.preferred_username, 'polis1');
    assert.ok(id.nonce);
    child.kill('SIGTERM');
  });
}

test('resource given explicitly, client_secret_post, issuer path', async () => {
  const keys = join(dir, 'path.json');
  makeKeys('ES256', 'p1', keys);
  const { child, issuer } = await startProvider(keys, ['--issuer-path', '/oidc']);
  assert.match(issuer, /\/oidc$/);
  await checkAccessToken(issuer, login(issuer, '--resource', 'samverkan-api', '--auth', 'post').access_token, 'ES256', 'p1');
  await checkAccessToken(issuer, login(issuer, '--resource', 'urn:samverkan-api').access_token, 'ES256', 'p1');
  child.kill('SIGTERM');
});

test('SIGHUP swaps keys in place; the old key stays published while kept in the file', async () => {
  const keys = join(dir, 'rot.json');
  makeKeys('RS256', 'old', keys);
  const { child, issuer, stderr } = await startProvider(keys);
  const before = login(issuer).access_token;
  makeKeys('EdDSA', 'new', keys, true); // new key first, old kept
  child.kill('SIGHUP');
  for (let i = 0; i < 50 && !String(Buffer.concat(stderr)).includes('RELOADED'); i += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual((await jwksOf(issuer)).keys.map((k) => k.kid), ['new', 'old']);
  await checkAccessToken(issuer, login(issuer).access_token, 'EdDSA', 'new');
  await checkAccessToken(issuer, before, 'RS256', 'old');
  child.kill('SIGTERM');
});

test('restart on the same fixed port', async () => {
  const keys = join(dir, 'fixed.json');
  makeKeys('RS256', 'f1', keys);
  const first = await startProvider(keys);
  const port = new URL(first.issuer).port;
  await checkAccessToken(first.issuer, login(first.issuer).access_token, 'RS256', 'f1');
  first.child.kill('SIGTERM');
  await once(first.child, 'exit');
  makeKeys('ES256', 'f2', keys);
  const second = await startProvider(keys, ['--port', port]);
  assert.equal(second.issuer, first.issuer);
  assert.equal(decodeProtectedHeader(login(second.issuer).access_token).kid, 'f2');
  second.child.kill('SIGTERM');
});

// A tiny relying party, standing in for samverkan's pages: /login/oidc keeps state, nonce
// and the PKCE verifier server-side under a cookie and redirects to the provider;
// /auth/oidc/callback wants that cookie and the state, exchanges the code
// (client_secret_post), verifies the ID token and its nonce, and signs in with
// `303 Location: /` and `session=ok`. `/login/oidc?nopath=1` sets its cookie without
// Path, which a browser then keeps to /login only; `?strict=1` makes it SameSite=Strict.
// It also publishes a discovery document of its own, naming another authorization endpoint.
async function startFakeRp() {
  const flows = new Map(); // cookie value -> { state, nonce, verifier }
  const issued = []; // states handed to the provider, in order
  const seen = []; // what each callback got: { cookie, state, user }
  let issuer;
  let disco;
  const b64url = (buf) => buf.toString('base64url');
  async function handle(req, res) {
    const url = new URL(req.url, 'http://rp');
    const cookies = new Map((req.headers.cookie || '').split(/;\s*/).filter(Boolean)
      .map((c) => [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)]));
    if (url.pathname === '/login/oidc') {
      const flow = { state: b64url(randomBytes(16)), nonce: b64url(randomBytes(16)), verifier: b64url(randomBytes(32)) };
      const sid = b64url(randomBytes(16));
      flows.set(sid, flow);
      issued.push(flow.state);
      const auth = new URL(disco.authorization_endpoint);
      auth.search = new URLSearchParams({
        response_type: 'code',
        client_id: 'samverkan',
        redirect_uri: `http://127.0.0.1:${server.address().port}/auth/oidc/callback`,
        scope: 'openid profile',
        state: flow.state,
        nonce: flow.nonce,
        code_challenge: b64url(createHash('sha256').update(flow.verifier).digest()),
        code_challenge_method: 'S256',
      });
      const path = url.searchParams.has('nopath') ? '' : '; Path=/';
      const site = url.searchParams.has('strict') ? 'Strict' : 'Lax';
      res.writeHead(303, { location: auth.href, 'set-cookie': `rp_flow=${sid}${path}; HttpOnly; SameSite=${site}` }).end();
      return;
    }
    if (url.pathname === '/auth/oidc/callback') {
      const sid = cookies.get('rp_flow');
      const got = { cookie: sid ?? null, state: url.searchParams.get('state'), user: null };
      seen.push(got);
      const flow = flows.get(sid);
      if (!flow) { res.writeHead(400).end('no login in progress'); return; }
      if (got.state !== flow.state) { res.writeHead(400).end('state mismatch'); return; }
      flows.delete(sid);
      const tokRes = await fetch(disco.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: url.searchParams.get('code') ?? '',
          redirect_uri: `http://127.0.0.1:${server.address().port}/auth/oidc/callback`,
          code_verifier: flow.verifier,
          client_id: 'samverkan',
          client_secret: 'samverkan-test-secret',
        }),
      });
      const tok = await tokRes.json();
      if (!tokRes.ok) { res.writeHead(401).end(JSON.stringify(tok)); return; }
      const { payload } = await jwtVerify(tok.id_token, createLocalJWKSet(await jwksOf(issuer)),
        { issuer, audience: 'samverkan' });
      if (payload.nonce !== flow.nonce) { res.writeHead(401).end('nonce mismatch'); return; }
      got.user = payload.preferred_username;
      res.writeHead(303, {
        location: '/',
        'set-cookie': ['session=ok; Path=/; HttpOnly; SameSite=Lax', 'rp_flow=; Path=/; Max-Age=0'],
      }).end();
      return;
    }
    if (url.pathname === '/.well-known/openid-configuration') {
      const me = `http://127.0.0.1:${server.address().port}`;
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: me, authorization_endpoint: `${me}/authorize` }));
      return;
    }
    res.writeHead(404).end();
  }
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => { res.writeHead(500).end(String(e)); });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    base: `http://127.0.0.1:${server.address().port}`,
    issued,
    seen,
    async useProvider(iss) {
      issuer = iss;
      disco = await (await fetch(`${iss}/.well-known/openid-configuration`)).json();
    },
  };
}

// Asynchronous on purpose: the fake RP runs in this process and must keep answering.
const execFileP = promisify(execFile);
const run = (script, start, ...args) => execFileP('node',
  [join(here, script), '--start', start, '--user', 'polis1', ...args]);
const browse = async (...args) => JSON.parse((await run(...args)).stdout);

test('a relying party end to end: login.mjs --start', async () => {
  const rp = await startFakeRp();
  after(() => { rp.server.closeAllConnections(); rp.server.close(); });
  const keys = join(dir, 'rp.json');
  makeKeys('ES256', 'rp1', keys);
  const callbackUri = `${rp.base}/auth/oidc/callback`;
  const { child, issuer } = await startProvider(keys, [], { OIDC_REDIRECT_URIS: callbackUri });
  await rp.useProvider(issuer);
  const start = `${rp.base}/login/oidc`;

  for (const [script, extra] of [['login.mjs', []], ['login.mjs', ['--issuer', issuer]]]) {
    const name = [script, ...extra].join(' ');
    const ok = await browse(script, start, ...extra);
    console.log(`# ${name}: ${JSON.stringify(ok)}`);
    assert.equal(ok.status, 303, name);
    assert.equal(ok.location, '/', name);
    assert.deepEqual(ok.set_cookie, ['session=ok; Path=/; HttpOnly; SameSite=Lax', 'rp_flow=; Path=/; Max-Age=0'], name);
    const cb = new URL(ok.callback);
    assert.equal(`${cb.origin}${cb.pathname}`, callbackUri, name);
    assert.equal(cb.searchParams.get('state'), rp.issued.at(-1), name); // the RP's own state, untouched
    assert.ok(cb.searchParams.get('code'), name);
    assert.equal(rp.seen.at(-1).user, 'polis1', name);

    // Another state in the callback: refused before any code exchange.
    const forged = await browse(script, start, '--tamper-state');
    console.log(`# ${script} --tamper-state: ${JSON.stringify(forged)}`);
    assert.deepEqual([forged.status, forged.location, forged.set_cookie], [400, null, []], name);
    const fcb = new URL(forged.callback).searchParams;
    assert.notEqual(fcb.get('state'), rp.issued.at(-1), name);
    assert.ok(fcb.get('state') && fcb.get('code'), name);
    assert.ok(rp.seen.at(-1).cookie, name); // the cookie still went along
    assert.equal(rp.seen.at(-1).user, null, name);

    // No cookie at the callback: refused, though the state is the RP's own.
    const bare = await browse(script, start, '--drop-cookies');
    console.log(`# ${script} --drop-cookies: ${JSON.stringify(bare)}`);
    assert.deepEqual([bare.status, bare.location, bare.set_cookie], [400, null, []], name);
    assert.equal(new URL(bare.callback).searchParams.get('state'), rp.issued.at(-1), name);
    assert.equal(rp.seen.at(-1).cookie, null, name);

    // The RP's start answering anything but a redirect is the harness's failure: exit 1.
    await assert.rejects(browse(script, `${rp.base}/nowhere`),
      (e) => e.code === 1 && /404.*not a (302\/303|redirect)/.test(e.stderr), name);
  }

  // login.mjs keeps cookie paths as a browser does: set at /login/oidc without Path, the
  // cookie belongs to /login and never reaches /auth/oidc/callback.
  const lost = await browse('login.mjs', `${start}?nopath=1`);
  assert.equal(lost.status, 400);
  assert.equal(rp.seen.at(-1).cookie, null);
  // --issuer checks that the RP sent the browser to that provider's authorization endpoint.
  await assert.rejects(browse('login.mjs', start, '--issuer', rp.base),
    (e) => e.code === 1 && e.stderr.includes(`not ${rp.base}/authorize`));
  // A SameSite=Strict cookie is still sent (same site here), with a warning that a
  // provider on another site would lose it.
  const strict = await run('login.mjs', `${start}?strict=1`);
  assert.equal(JSON.parse(strict.stdout).status, 303);
  assert.match(strict.stderr, /rp_flow is SameSite=Strict/);
  child.kill('SIGTERM');
});
