// Signs arbitrary claims with a key of a keys file (make-keys.mjs), for tests of what a
// relying party must refuse: wrong audience or issuer, expired, a foreign key with a
// known kid. `--header` merges into the protected header (e.g. a kid of another key).
//
//   node sign.mjs --keys FILE --claims '{"iss":...}' [--kid K] [--header '{"kid":"x"}']
// Prints the compact JWS.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { importJWK, SignJWT } from 'jose';

const { values: opt } = parseArgs({
  options: {
    keys: { type: 'string' },
    claims: { type: 'string' },
    kid: { type: 'string' },
    header: { type: 'string', default: '{}' },
  },
});
const { keys } = JSON.parse(readFileSync(opt.keys, 'utf8'));
const jwk = opt.kid ? keys.find((k) => k.kid === opt.kid) : keys[0];
if (!jwk) throw new Error(`no key ${opt.kid}`);
const key = await importJWK(jwk, jwk.alg);
const jwt = await new SignJWT(JSON.parse(opt.claims))
  .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: 'at+jwt', ...JSON.parse(opt.header) })
  .sign(key);
process.stdout.write(`${jwt}\n`);
