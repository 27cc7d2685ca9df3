// Checks provider.mjs, login.mjs and make-keys.mjs together: `node --test selftest.mjs`
// (or `npm test`). Needs only loopback; takes a few seconds.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
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
async function startProvider(keys, extra = []) {
  const child = spawn('node', [join(here, 'provider.mjs'), '--port', '0', '--keys', keys, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
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
