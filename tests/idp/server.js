// Test-only identity provider for agw's end-to-end tests.
//
// oauth2-mock-server (a real JOSE implementation: keys made and tokens signed by `jose`) served behind
// Keycloak's paths, so the tests talk to it exactly as users talk to Keycloak:
//   GET  /realms/master/.well-known/openid-configuration   (and /.well-known/openid-configuration)
//   GET  /realms/master/protocol/openid-connect/certs      JWKS
//   POST /realms/master/protocol/openid-connect/token      password and client_credentials grants
// Issuer: http://HOST:PORT/realms/master.
//
// The library accepts any user and password; this wrapper checks them (401 invalid_grant, as Keycloak does)
// and adds Keycloak's claims (aud, azp, preferred_username, realm_access, typ, jti).
//
// Test control endpoints (never exposed outside tests):
//   POST /__control/rotate  {"alg": "RS256", "keep_old": false}  -> a new signing key; the old one leaves the
//                            JWKS unless keep_old. Answers {"kid", "alg", "jwks"}.
//   POST /__control/mint    {"claims": {...}, "alg": "ES256", "header": {...}, "expires_in": 300}
//                            -> {"token", "kid"}. Claims/header fields set to null are removed (e.g. no exp,
//                            no kid). RS256 (or the signing key's alg) signs with the signing key; other algs
//                            use one extra key per alg, published in the JWKS from its first use.
//   GET  /__control/keys    -> the private JWKs (so a test can sign something unusual itself).
//
// Usage: node server.js --host 127.0.0.1 --port 0 [--user user1:password] [--audience my-application]
//                       [--ttl 300] [--issuer URL]
// Prints one line "listening on http://HOST:PORT" when ready.

import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const REALM_PREFIX = '/realms/master';
const CONTROL_PREFIX = '/__control/';
const MAX_CONTROL_BODY = 64 * 1024;
const SUPPORTED_ALGS = new Set([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
]);

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, users: {}, audience: 'my-application', ttl: 300, issuer: null };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${name}`);
    i += 1;
    switch (name) {
      case '--host': opts.host = value; break;
      case '--port': opts.port = Number(value); break;
      case '--audience': opts.audience = value; break;
      case '--ttl': opts.ttl = Number(value); break;
      case '--issuer': opts.issuer = value; break;
      case '--user': {
        const colon = value.indexOf(':');
        if (colon < 1) throw new Error(`--user wants NAME:PASSWORD, got ${value}`);
        opts.users[value.slice(0, colon)] = value.slice(colon + 1);
        break;
      }
      default: throw new Error(`unknown option ${name}`);
    }
  }
  if (Object.keys(opts.users).length === 0) opts.users.user1 = 'password';
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
let issuerUrl = opts.issuer; // known once the port is bound

// Deterministic per-user subject, shaped like Keycloak's (a UUID), so tests can predict it.
function subjectFor(username) {
  const hex = Buffer.from(`agw-test-${username}`).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function keycloakClaims(payload, { username, clientId }) {
  const client = clientId || opts.audience;
  payload.exp = payload.iat + opts.ttl;
  payload.jti = randomUUID();
  payload.aud = clientId || opts.audience;
  payload.azp = client;
  payload.typ = 'Bearer';
  if (username !== undefined) {
    payload.sub = subjectFor(username);
    payload.preferred_username = username;
  } else {
    payload.sub = subjectFor(`service-account-${client}`);
    payload.preferred_username = `service-account-${client}`;
  }
  payload.realm_access = { roles: ['default-roles-master', 'offline_access', 'uma_authorization'] };
  payload.scope = payload.scope || 'profile email';
}

function clientIdOf(req) {
  const auth = req.headers.authorization;
  if (auth && auth.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    return decoded.split(':')[0];
  }
  return typeof req.body.client_id === 'string' ? req.body.client_id : undefined;
}

// A realm is one OAuth2Issuer (holding exactly the signing key) and the library's request handler around it.
// Rotation builds a new realm behind the same listening socket: the library's key store cannot drop keys,
// and with several keys it would sign round-robin.
function buildRealm(signingJwk) {
  const issuer = new OAuth2Issuer();
  issuer.url = issuerUrl;
  const service = new OAuth2Service(issuer, {
    wellKnownDocument: '/.well-known/openid-configuration',
    token: '/protocol/openid-connect/token',
    jwks: '/protocol/openid-connect/certs',
    authorize: '/protocol/openid-connect/auth',
    userinfo: '/protocol/openid-connect/userinfo',
    revoke: '/protocol/openid-connect/revoke',
    endSession: '/protocol/openid-connect/logout',
    introspect: '/protocol/openid-connect/token/introspect',
  });
  const signingsPerRequest = new WeakMap();
  service.on('beforeTokenSigning', (token, req) => {
    // The library signs the access token first, then (for user grants) an id_token.
    const count = (signingsPerRequest.get(req) || 0) + 1;
    signingsPerRequest.set(req, count);
    if (count > 1) return;
    const username = req.body.grant_type === 'password' ? String(req.body.username) : undefined;
    keycloakClaims(token.payload, { username, clientId: clientIdOf(req) });
  });
  service.on('beforeResponse', (response, req) => {
    const body = req.body;
    if (body.grant_type === 'password') {
      const known = Object.prototype.hasOwnProperty.call(opts.users, body.username);
      if (!known || opts.users[body.username] !== body.password) {
        response.statusCode = 401;
        response.body = { error: 'invalid_grant', error_description: 'Invalid user credentials' };
        return;
      }
    }
    if (response.statusCode === 200 && typeof response.body === 'object') {
      response.body.expires_in = opts.ttl;
      response.body.scope = response.body.scope || 'profile email';
      const scopes = String(body.scope || '').split(' ');
      if (!scopes.includes('openid')) delete response.body.id_token;
    }
  });
  return { issuer, service, signingJwk };
}

async function newRealm(alg) {
  const issuer = new OAuth2Issuer();
  const jwk = await issuer.keys.generate(alg);
  const realm = buildRealm(jwk);
  await realm.issuer.keys.add(jwk);
  return realm;
}

let realm = null;
let retiredPublicKeys = []; // old signing keys still published (rotate with keep_old)
const extraIssuers = new Map(); // alg -> OAuth2Issuer with one key of that alg, for /__control/mint

function publicJwks() {
  const keys = [...realm.issuer.keys.toJSON(), ...retiredPublicKeys];
  for (const extra of extraIssuers.values()) keys.push(...extra.keys.toJSON());
  // Keycloak marks every published key with its use.
  return { keys: keys.map((key) => ({ use: 'sig', ...key })) };
}

async function issuerForAlg(alg) {
  if (alg === realm.signingJwk.alg) return realm.issuer;
  let extra = extraIssuers.get(alg);
  if (extra === undefined) {
    extra = new OAuth2Issuer();
    extra.url = issuerUrl;
    await extra.keys.generate(alg);
    extraIssuers.set(alg, extra);
  }
  return extra;
}

function applyOverrides(target, overrides) {
  for (const [name, value] of Object.entries(overrides || {})) {
    if (value === null) delete target[name];
    else target[name] = value;
  }
}

async function mint({ claims, alg = 'RS256', header, expires_in: expiresIn }) {
  if (!SUPPORTED_ALGS.has(alg)) throw new ControlError(`unsupported alg ${alg}`);
  const issuer = await issuerForAlg(alg);
  const kid = issuer.keys.toJSON()[0].kid;
  const token = await issuer.buildToken({
    kid,
    scopesOrTransform: (tokenHeader, payload) => {
      keycloakClaims(payload, { username: 'user1' });
      if (expiresIn !== undefined) payload.exp = payload.iat + Number(expiresIn);
      applyOverrides(payload, claims);
      applyOverrides(tokenHeader, header);
    },
  });
  return { token, kid };
}

async function rotate({ alg = 'RS256', keep_old: keepOld = false }) {
  if (!SUPPORTED_ALGS.has(alg)) throw new ControlError(`unsupported alg ${alg}`);
  const previous = realm;
  realm = await newRealm(alg);
  if (keepOld) retiredPublicKeys.push(...previous.issuer.keys.toJSON());
  else retiredPublicKeys = [];
  return { kid: realm.signingJwk.kid, alg, jwks: publicJwks() };
}

class ControlError extends Error {}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_CONTROL_BODY) {
        reject(new ControlError('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handleControl(req, res, path) {
  try {
    if (req.method === 'GET' && path === 'keys') {
      const keys = [...realm.issuer.keys.toJSON(true)];
      for (const extra of extraIssuers.values()) keys.push(...extra.keys.toJSON(true));
      sendJson(res, 200, { keys });
      return;
    }
    if (req.method !== 'POST') throw new ControlError('POST expected');
    const text = await readBody(req);
    const body = text ? JSON.parse(text) : {};
    if (path === 'rotate') sendJson(res, 200, await rotate(body));
    else if (path === 'mint') sendJson(res, 200, await mint(body));
    else sendJson(res, 404, { error: `unknown control endpoint ${path}` });
  } catch (err) {
    const status = err instanceof ControlError || err instanceof SyntaxError ? 400 : 500;
    sendJson(res, status, { error: String(err.message || err) });
  }
}

function dispatch(req, res) {
  const url = new URL(req.url, 'http://idp.invalid');
  const path = url.pathname;
  if (path.startsWith(CONTROL_PREFIX)) {
    handleControl(req, res, path.slice(CONTROL_PREFIX.length));
    return;
  }
  let realmPath;
  if (path === '/.well-known/openid-configuration') realmPath = path;
  else if (path.startsWith(`${REALM_PREFIX}/`)) realmPath = path.slice(REALM_PREFIX.length);
  else {
    sendJson(res, 404, { error: 'Realm does not exist' });
    return;
  }
  if (realmPath === '/protocol/openid-connect/certs' && req.method === 'GET') {
    // Our own JWKS: the signing key plus retained and per-alg keys (the library only knows its own store).
    sendJson(res, 200, publicJwks());
    return;
  }
  req.url = realmPath + url.search;
  realm.service.requestHandler(req, res);
}

async function main() {
  realm = await newRealm('RS256');
  const server = createServer(dispatch);
  server.headersTimeout = 10000;
  server.requestTimeout = 30000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  const { port } = server.address();
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  if (issuerUrl === null) issuerUrl = `http://${hostForUrl}:${port}${REALM_PREFIX}`;
  realm.issuer.url = issuerUrl;
  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.stdout.write(`listening on http://${hostForUrl}:${port} issuer ${issuerUrl}\n`);
}

main().catch((err) => {
  process.stderr.write(`test idp failed to start: ${err.stack || err}\n`);
  process.exit(1);
});
