// Writes a private JWKS for provider.mjs:
//   node make-keys.mjs --alg RS256|ES256|EdDSA --kid K --out FILE [--append]
// With --append the new key goes first and the keys already in FILE are kept
// after it: the provider signs with the first key and publishes all of them,
// which is what a key-rotation test wants (new tokens on the new key, old
// tokens still verifiable).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair } from 'jose';

const { values: opt } = parseArgs({
  options: {
    alg: { type: 'string' },
    kid: { type: 'string' },
    out: { type: 'string' },
    append: { type: 'boolean', default: false },
  },
});
const GEN = {
  RS256: ['RS256', { modulusLength: 2048 }],
  ES256: ['ES256', {}],
  EdDSA: ['EdDSA', { crv: 'Ed25519' }],
};
if (!GEN[opt.alg] || !opt.kid || !opt.out) {
  console.error('usage: node make-keys.mjs --alg RS256|ES256|EdDSA --kid K --out FILE [--append]');
  process.exit(2);
}

const [genAlg, genOpts] = GEN[opt.alg];
const { privateKey } = await generateKeyPair(genAlg, { ...genOpts, extractable: true });
// `alg` is written into the JWK because the provider takes each key's signing
// algorithm from it (an RSA key would otherwise fit PS256..RS512 alike).
const jwk = { ...(await exportJWK(privateKey)), kid: opt.kid, alg: opt.alg, use: 'sig' };

const old = opt.append && existsSync(opt.out) ? JSON.parse(readFileSync(opt.out, 'utf8')).keys : [];
if (old.some((k) => k.kid === opt.kid)) {
  console.error(`kid ${opt.kid} is already in ${opt.out}`);
  process.exit(2);
}
// 0600: these are private keys, even if only test ones.
writeFileSync(opt.out, `${JSON.stringify({ keys: [jwk, ...old] }, null, 2)}\n`, { mode: 0o600 });
