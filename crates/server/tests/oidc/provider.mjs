#!/usr/bin/env node
// Test OpenID Provider for ChatNode's "Sign in with <provider>" tests.
//
// A real OpenID Connect provider (panva's certified `oidc-provider`) on a loopback
// port, plus a small control API under /__test/ so tests can choose who signs in and
// break things on purpose. See README.md in this folder.
//
//   node provider.mjs --port 0 --client-id ID --client-secret SECRET \
//        --redirect-uri URI [--redirect-uri URI2 ...]
//
// stdout: exactly one line, `listening http://127.0.0.1:PORT`. Everything else goes to stderr.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

// stdout carries exactly one line (the address). oidc-provider prints its NOTICEs with
// console.info, so send every console method to stderr before loading it.
console.log = console.error; // eslint-disable-line no-console
console.info = console.error; // eslint-disable-line no-console
console.debug = console.error; // eslint-disable-line no-console
const { default: Provider } = await import('oidc-provider');

// ---------------------------------------------------------------------------------------------
// Command line

function usage(message) {
  if (message) process.stderr.write(`provider.mjs: ${message}\n`);
  process.stderr.write(
    'usage: node provider.mjs --port PORT --client-id ID --client-secret SECRET '
      + '--redirect-uri URI [--redirect-uri URI ...]\n',
  );
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  usage(err.message);
}
if (args.help) usage();
if (args.port === undefined || !/^\d+$/.test(args.port) || Number(args.port) > 65535) {
  usage('--port must be a number (0 picks a free port)');
}
if (!args['client-id']) usage('--client-id is required');
if (!args['client-secret']) usage('--client-secret is required');
if (!args['redirect-uri']?.length) usage('at least one --redirect-uri is required');

const log = (...parts) => process.stderr.write(`[test-idp] ${parts.join(' ')}\n`);

// ---------------------------------------------------------------------------------------------
// Mutable test state (driven by the /__test/ control API)

const DEFAULT_IDENTITY = Object.freeze({
  sub: 'alice',
  email: 'alice@example.com',
  email_verified: true,
  preferred_username: 'alice',
  name: 'Alice Example',
});

const state = {
  identity: { ...DEFAULT_IDENTITY }, // who signs in next (auto mode)
  loginPage: false, // page mode: show an HTML sign-in form instead of auto-login
  foreignKey: false, // JWKS serves a different public key under the signing key's kid
  deny: false, // extra: interactions end with error=access_denied
  lastTokenRequest: null,
};

// Claims as they were at sign-in, per account id (= sub), so that a test that changes the
// identity between the authorization redirect and the code exchange still gets the claims
// of the user who actually signed in.
const accounts = new Map();

const IDENTITY_CLAIMS = ['email', 'email_verified', 'preferred_username', 'name'];

function validateIdentity(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return 'body must be a JSON object';
  }
  if (typeof body.sub !== 'string' || body.sub === '') return 'sub must be a non-empty string';
  for (const key of Object.keys(body)) {
    if (key !== 'sub' && !IDENTITY_CLAIMS.includes(key)) return `unknown claim ${key}`;
  }
  for (const key of ['email', 'preferred_username', 'name']) {
    if (body[key] !== undefined && typeof body[key] !== 'string') return `${key} must be a string`;
  }
  if (body.email_verified !== undefined && typeof body.email_verified !== 'boolean') {
    return 'email_verified must be a boolean';
  }
  return null;
}

function pickIdentity(body) {
  const out = { sub: body.sub };
  for (const key of IDENTITY_CLAIMS) if (body[key] !== undefined) out[key] = body[key];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keys: one RSA signing key generated at start, and a "foreign" key whose public half is served
// under the same kid while foreign-key mode is on.

function rsaJwk() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ format: 'jwk' });
}

const KID = `test-idp-${randomBytes(6).toString('hex')}`;
const signingJwk = { ...rsaJwk(), kid: KID, alg: 'RS256', use: 'sig' };
const foreignJwk = rsaJwk();

// ---------------------------------------------------------------------------------------------
// Small HTTP helpers for our own routes

async function readBody(ctx, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > limit) ctx.throw(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(ctx) {
  const text = await readBody(ctx);
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sendJson(ctx, status, value) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(value);
}

function badRequest(ctx, message) {
  sendJson(ctx, 400, { error: message });
}

function noContent(ctx) {
  ctx.status = 204;
  ctx.body = null;
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function loginPage(uid, clientId, error) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test IdP — sign in</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 24rem; margin: 4rem auto; padding: 0 1rem; }
  label { display: block; margin-bottom: .25rem; font-weight: 600; }
  input { width: 100%; padding: .5rem; font-size: 1rem; box-sizing: border-box; }
  button { margin-top: 1rem; padding: .5rem 1rem; font-size: 1rem; }
  .error { color: #a00000; }
</style>
</head>
<body>
<main>
<h1>Test IdP — sign in</h1>
<p>Signing in to <strong>${escapeHtml(clientId)}</strong>.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : ''}<form method="post" action="${escapeHtml(action)}">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" autocomplete="username" required autofocus>
  <button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Server and provider

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(args.port), '127.0.0.1', resolve);
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: args['redirect-uri'],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    // oidc-provider accepts client_secret_basic AND client_secret_post for a client registered
    // with either of the two (lib/shared/token_auth.js), so both work for this client.
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingJwk] },
  responseTypes: ['code'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  pkce: { methods: ['S256'], required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put scope-requested claims (email, name, ...) in the ID token itself, not only at userinfo.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false }, // our own /interaction routes below
    userinfo: { enabled: true },
  },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  // Sessions are dropped at the start of every authorization request (see below), so codes
  // must not be bound to them.
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  // Plain-HTTP loopback: no Secure flag (koa sets it only on TLS), and Lax instead of the default
  // SameSite=None for the long-lived session cookie (browsers drop SameSite=None without Secure).
  // Cookies are scoped by host, not port: the relying party on 127.0.0.1:OTHERPORT sees these
  // too, so give them names that cannot collide with the relying party's own cookies.
  cookies: {
    names: {
      session: 'test_idp_session',
      interaction: 'test_idp_interaction',
      resume: 'test_idp_resume',
    },
    keys: [randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { ...(accounts.get(id) ?? {}), sub: id };
      },
    };
  },
  // Error pages shown to the browser (bad client_id / redirect_uri, expired interaction, ...).
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test IdP — error</title></head>`
      + `<body><main><h1>Test IdP — error</h1><pre>${escapeHtml(JSON.stringify(out, null, 2))}</pre></main></body></html>\n`;
  },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => {
    log(event, err?.name ?? '', err?.message ?? '', err?.error_description ?? '');
  });
}

const SESSION_COOKIE = provider.cookieName('session');
const AUTH_PATH = new URL(provider.urlFor('authorization')).pathname; // "/auth"

async function finishLogin(ctx, interaction, identity) {
  accounts.set(identity.sub, pickIdentity(identity));
  await provider.interactionFinished(ctx.req, ctx.res, {
    login: { accountId: identity.sub, remember: false },
  }, { mergeWithLastSubmission: false });
  ctx.respond = false;
}

async function finishConsent(ctx, interaction) {
  const { prompt: { details }, params, session, grantId } = interaction;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  if (details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const savedGrantId = await grant.save();
  await provider.interactionFinished(ctx.req, ctx.res, {
    consent: { grantId: savedGrantId },
  }, { mergeWithLastSubmission: true });
  ctx.respond = false;
}

async function finishDenied(ctx) {
  await provider.interactionFinished(ctx.req, ctx.res, {
    error: 'access_denied',
    error_description: 'end-user denied the request (test IdP deny mode)',
  }, { mergeWithLastSubmission: false });
  ctx.respond = false;
}

// Interactions: GET /interaction/:uid and POST /interaction/:uid/login
async function interactionRoute(ctx, uid, action) {
  const interaction = await provider.interactionDetails(ctx.req, ctx.res);
  if (interaction.uid !== uid) ctx.throw(400, 'interaction cookie does not match the URL');
  const { prompt } = interaction;

  if (action === undefined && ctx.method === 'GET') {
    if (state.deny) return finishDenied(ctx);
    if (prompt.name === 'login') {
      if (state.loginPage) {
        ctx.type = 'html';
        ctx.set('cache-control', 'no-store');
        ctx.body = loginPage(uid, interaction.params.client_id);
        return undefined;
      }
      return finishLogin(ctx, interaction, state.identity);
    }
    if (prompt.name === 'consent') return finishConsent(ctx, interaction);
    ctx.throw(400, `unsupported prompt ${prompt.name}`);
  }

  if (action === 'login' && ctx.method === 'POST') {
    if (prompt.name !== 'login') ctx.throw(400, 'this interaction is not a login');
    const form = new URLSearchParams(await readBody(ctx));
    const username = (form.get('username') ?? '').trim();
    if (!username) {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = loginPage(uid, interaction.params.client_id, 'Enter a username.');
      return undefined;
    }
    state.identity = {
      sub: `user-${username}`,
      email: `${username}@example.com`,
      email_verified: true,
      preferred_username: username,
      name: username,
    };
    return finishLogin(ctx, interaction, state.identity);
  }

  ctx.throw(405, 'method not allowed');
  return undefined;
}

async function controlRoute(ctx, name) {
  const route = `${ctx.method} ${name}`;
  switch (route) {
    case 'POST identity': {
      const body = await readJson(ctx);
      const problem = validateIdentity(body);
      if (problem) return badRequest(ctx, problem);
      state.identity = pickIdentity(body);
      return noContent(ctx);
    }
    case 'GET identity':
      return sendJson(ctx, 200, state.identity);
    case 'POST login-page':
    case 'POST foreign-key':
    case 'POST deny': {
      const body = await readJson(ctx);
      if (typeof body?.on !== 'boolean') return badRequest(ctx, 'body must be {"on": true|false}');
      if (name === 'login-page') state.loginPage = body.on;
      else if (name === 'foreign-key') state.foreignKey = body.on;
      else state.deny = body.on;
      return noContent(ctx);
    }
    case 'GET last-token-request':
      if (!state.lastTokenRequest) return sendJson(ctx, 404, { error: 'no token request yet' });
      return sendJson(ctx, 200, state.lastTokenRequest);
    default:
      return sendJson(ctx, 404, { error: `no such control route: ${route}` });
  }
}

// How the client tried to authenticate at the token endpoint: "basic" (Authorization: Basic),
// "post" (client_secret in the form body), "jwt" (client_assertion), "none", or a "+"-joined
// combination such as "basic+post" (which oidc-provider rejects with invalid_request).
function clientAuthOf(ctx, body) {
  const used = [];
  if (/^basic /i.test(ctx.get('authorization'))) used.push('basic');
  if (body?.client_secret !== undefined) used.push('post');
  if (body?.client_assertion !== undefined) used.push('jwt');
  return used.length ? used.join('+') : 'none';
}

// Middleware in front of oidc-provider (provider.use runs before its own routes).
provider.use(async (ctx, next) => {
  const { path } = ctx;

  if (path.startsWith('/__test/')) {
    await controlRoute(ctx, path.slice('/__test/'.length));
    return;
  }

  const m = /^\/interaction\/([^/]+)(?:\/([^/]+))?$/.exec(path);
  if (m) {
    await interactionRoute(ctx, decodeURIComponent(m[1]), m[2]);
    return;
  }

  // Every new authorization request starts without a provider session, so each sign-in is a
  // fresh login with whatever identity is current (and a fresh consent/Grant).
  if (path === AUTH_PATH) {
    const sid = ctx.cookies.get(SESSION_COOKIE);
    if (sid) {
      const session = await provider.Session.find(sid);
      if (session) await session.destroy();
    }
  }

  await next();

  const route = ctx.oidc?.route;
  if (route === 'token' && ctx.method === 'POST') {
    const body = ctx.oidc.body ?? {};
    state.lastTokenRequest = {
      client_auth: clientAuthOf(ctx, body),
      had_code_verifier: typeof body.code_verifier === 'string' && body.code_verifier.length > 0,
      grant_type: body.grant_type ?? null,
      client_id: ctx.oidc.client?.clientId ?? null,
      status: ctx.status,
      error: ctx.status >= 400 ? (ctx.body?.error ?? null) : null,
    };
  }

  if (route === 'jwks' && state.foreignKey && ctx.body?.keys) {
    ctx.body = {
      keys: ctx.body.keys.map((key) => (key.kid === KID && key.kty === 'RSA'
        ? { ...key, n: foreignJwk.n, e: foreignJwk.e }
        : key)),
    };
  }
});

server.on('request', provider.callback());

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections?.();
    server.close();
    process.exit(0);
  });
}

process.stdout.write(`listening ${ISSUER}\n`);
