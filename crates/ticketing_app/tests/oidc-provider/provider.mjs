// A real OpenID Connect issuer for the end-to-end identity tests: the certified `oidc-provider`
// package, configured here and nothing more. Its keys are made at start and never written down,
// so restarting it with other KEYS is a key rotation at the issuer.
//
// Environment: PORT (required), KEYS (comma-separated key ids; the prefix picks the type:
// rsa-*, ec-* or ed-*; the first signs), AUDIENCE (the API's resource and `aud`), REDIRECT_URI
// (the page's address, registered for the public client `ticketing-page`).
// Prints `issuer <url>` on standard output once it listens.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be a port number');
  process.exit(2);
}
const audience = process.env.AUDIENCE || 'urn:ticketing:api';
const redirectUri = process.env.REDIRECT_URI;
if (!redirectUri) {
  console.error('REDIRECT_URI is required');
  process.exit(2);
}

function signingKey(kid) {
  if (kid.startsWith('ec-')) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };
  }
  if (kid.startsWith('ed-')) {
    const { privateKey } = generateKeyPairSync('ed25519');
    return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' };
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
}

const keys = (process.env.KEYS || 'rsa-1').split(',').map((kid) => signingKey(kid.trim()));
const alg = keys[0].alg;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks: { keys },
  clients: [{
    client_id: 'ticketing-page',
    token_endpoint_auth_method: 'none',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: alg,
  }],
  // Access tokens for the API are JWTs the service verifies in-process against the JWKS.
  features: {
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg } },
      }),
    },
  },
  scopes: ['openid', 'api'],
  pkce: { required: () => true },
});
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

provider.listen(port, '127.0.0.1', () => {
  console.log(`issuer ${issuer}`);
});
