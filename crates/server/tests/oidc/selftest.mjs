#!/usr/bin/env node
// Self-test of provider.mjs: starts it on port 0 as a child process and drives it like a
// relying party would, with a plain HTTP client and a cookie jar (no browser).
// Exit code 0 and a last line "N passed, 0 failed" on success.

import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT_ID = 'chatnode-test';
const CLIENT_SECRET = 'secret with spaces & symbols:/+'; // exercises form-encoding in Basic auth
const REDIRECT_URI = 'http://127.0.0.1:9/oidc/callback'; // never contacted: we stop at the redirect
const REDIRECT_URI_2 = 'http://localhost:9/other/callback';
const verbose = process.argv.includes('-v') || process.argv.includes('--verbose');

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
}
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const formEncode = (s) => new URLSearchParams({ s }).toString().slice(2);

// --- the checks ---------------------------------------------------------------------------------

async function run(ISSUER) {
  // Discovery
  const disco = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
  check('discovery issuer', disco.issuer === ISSUER, disco.issuer);
  check('discovery endpoints', disco.authorization_endpoint === `${ISSUER}/auth`
    && disco.token_endpoint === `${ISSUER}/token` && disco.jwks_uri === `${ISSUER}/jwks`, disco);
  check('discovery PKCE S256 only', JSON.stringify(disco.code_challenge_methods_supported) === '["S256"]');
  check('discovery RS256 ID tokens', disco.id_token_signing_alg_values_supported.includes('RS256'));
  check('discovery response_types code', JSON.stringify(disco.response_types_supported) === '["code"]');
  check('discovery scopes', ['openid', 'email', 'profile'].every((s) => disco.scopes_supported.includes(s)));
  check('discovery iss response param', disco.authorization_response_iss_parameter_supported === true);
  if (verbose) console.log(JSON.stringify(disco, null, 2));

  const jwks = await (await fetch(disco.jwks_uri)).json();
  check('JWKS has one RS256 signing key with kid', jwks.keys.length === 1 && jwks.keys[0].alg === 'RS256'
    && jwks.keys[0].kty === 'RSA' && typeof jwks.keys[0].kid === 'string' && !('d' in jwks.keys[0]), jwks);
  const realKey = jwks.keys[0];

  const control = (path, body) => fetch(`${ISSUER}/__test/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  // 1) Auto mode, default identity, PKCE + client_secret_basic
  const jar = new CookieJar();
  const flow1 = await authorize(ISSUER, disco, jar, {});
  check('auto mode: ends in a redirect to redirect_uri with code', !!flow1.code, flow1.trace);
  check('auto mode: state echoed', flow1.params.get('state') === flow1.state);
  check('auto mode: iss in authorization response', flow1.params.get('iss') === ISSUER, flow1.params.get('iss'));
  check('auto mode: every hop is 303', flow1.trace.every((t) => t.status === 303), flow1.trace.map((t) => t.status));
  if (verbose) console.log('redirect chain:', flow1.trace);

  const tok1 = await tokenRequest(disco, flow1, 'basic');
  check('token endpoint 200', tok1.status === 200, tok1.json);
  check('token response has id_token, access_token, Bearer', !!tok1.json.id_token && !!tok1.json.access_token
    && /^bearer$/i.test(tok1.json.token_type), tok1.json);
  const id1 = decodeJwt(tok1.json.id_token);
  console.log('ID token header:', JSON.stringify(id1.header));
  console.log('ID token claims:', JSON.stringify(id1.payload));
  check('ID token header RS256 + kid', id1.header.alg === 'RS256' && id1.header.kid === realKey.kid, id1.header);
  check('ID token signature verifies with JWKS key', verifyJwt(tok1.json.id_token, realKey));
  check('ID token iss/aud', id1.payload.iss === ISSUER && (id1.payload.aud === CLIENT_ID
    || (Array.isArray(id1.payload.aud) && id1.payload.aud.includes(CLIENT_ID))), id1.payload);
  check('ID token nonce', id1.payload.nonce === flow1.nonce, id1.payload.nonce);
  check('ID token default identity claims', id1.payload.sub === 'alice'
    && id1.payload.email === 'alice@example.com' && id1.payload.email_verified === true
    && id1.payload.preferred_username === 'alice' && id1.payload.name === 'Alice Example', id1.payload);
  check('ID token exp/iat sane', id1.payload.exp > id1.payload.iat
    && Math.abs(id1.payload.iat - Date.now() / 1000) < 60, id1.payload);

  const last1 = await (await fetch(`${ISSUER}/__test/last-token-request`)).json();
  check('last-token-request: basic + code_verifier + authorization_code', last1.client_auth === 'basic'
    && last1.had_code_verifier === true && last1.grant_type === 'authorization_code', last1);

  const replay = await tokenRequest(disco, flow1, 'basic');
  check('code is single use (invalid_grant on replay)', replay.status === 400 && replay.json.error === 'invalid_grant', replay.json);

  // 2) PKCE is enforced
  const noPkce = await authorize(ISSUER, disco, new CookieJar(), { omitPkce: true });
  check('no code_challenge: error=invalid_request redirect', noPkce.params?.get('error') === 'invalid_request', noPkce.trace);
  const plain = await authorize(ISSUER, disco, new CookieJar(), { method: 'plain' });
  check('code_challenge_method=plain rejected', plain.params?.get('error') === 'invalid_request', plain.trace);
  const badVerifier = await authorize(ISSUER, disco, new CookieJar(), {});
  const badTok = await tokenRequest(disco, { ...badVerifier, verifier: b64url(randomBytes(32)) }, 'basic');
  check('wrong code_verifier: invalid_grant', badTok.status === 400 && badTok.json.error === 'invalid_grant', badTok.json);
  const flowNoVerifier = await authorize(ISSUER, disco, new CookieJar(), {});
  const noVerTok = await tokenRequest(disco, { ...flowNoVerifier, verifier: undefined }, 'basic');
  check('missing code_verifier: rejected', noVerTok.status === 400, noVerTok.json);
  const lastNoVer = await (await fetch(`${ISSUER}/__test/last-token-request`)).json();
  check('last-token-request records had_code_verifier=false', lastNoVer.had_code_verifier === false, lastNoVer);

  // 3) client auth: wrong secret, and client_secret_post when the client is registered for basic
  const flowBadSecret = await authorize(ISSUER, disco, new CookieJar(), {});
  const badSecret = await tokenRequest(disco, flowBadSecret, 'basic', 'wrong');
  check('wrong client secret: 401 invalid_client', badSecret.status === 401 && badSecret.json.error === 'invalid_client', badSecret.json);
  const flowPost = await authorize(ISSUER, disco, new CookieJar(), {});
  const post = await tokenRequest(disco, flowPost, 'post');
  check('client_secret_post also accepted (oidc-provider treats basic/post alike)', post.status === 200 && !!post.json.id_token, post.json);
  const lastPost = await (await fetch(`${ISSUER}/__test/last-token-request`)).json();
  check('last-token-request records client_auth=post', lastPost.client_auth === 'post', lastPost);

  // 4) identity switching: same cookie jar (same "browser"), two identities in a row
  let r = await control('identity', { sub: 'bob', email: 'bob@example.org' });
  check('POST /__test/identity -> 204', r.status === 204, r.status);
  const flow2 = await authorize(ISSUER, disco, jar, {});
  const tok2 = await tokenRequest(disco, flow2, 'basic');
  const id2 = decodeJwt(tok2.json.id_token);
  console.log('ID token claims after identity switch:', JSON.stringify(id2.payload));
  check('identity switch: new sub and email, omitted claims absent', id2.payload.sub === 'bob'
    && id2.payload.email === 'bob@example.org' && !('email_verified' in id2.payload)
    && !('name' in id2.payload) && !('preferred_username' in id2.payload), id2.payload);
  check('identity switch: no logout/consent page in between', flow2.trace.every((t) => t.status === 303), flow2.trace);

  r = await control('identity', { sub: 'carol', email: 'carol@example.com', email_verified: false, name: 'Carol', preferred_username: 'carol' });
  const flow3 = await authorize(ISSUER, disco, jar, { scope: 'openid' });
  const id3 = decodeJwt((await tokenRequest(disco, flow3, 'basic')).json.id_token);
  check('scope=openid only: sub only, no email/profile claims', id3.payload.sub === 'carol'
    && !('email' in id3.payload) && !('name' in id3.payload), id3.payload);
  const flow4 = await authorize(ISSUER, disco, jar, { scope: 'openid email profile', redirectUri: REDIRECT_URI_2 });
  check('second registered redirect_uri works', flow4.redirectedTo?.startsWith(REDIRECT_URI_2), flow4.trace);
  const tok4 = await tokenRequest(disco, flow4, 'basic');
  const id4 = decodeJwt(tok4.json.id_token);
  check('email_verified=false is carried', id4.payload.sub === 'carol' && id4.payload.email_verified === false
    && id4.payload.name === 'Carol', id4.payload);

  // changing the identity after the redirect but before the code exchange does not change the token
  const flow5 = await authorize(ISSUER, disco, jar, {});
  await control('identity', { sub: 'dave' });
  const id5 = decodeJwt((await tokenRequest(disco, flow5, 'basic')).json.id_token);
  check('claims are those at sign-in time', id5.payload.sub === 'carol' && id5.payload.email === 'carol@example.com', id5.payload);

  // userinfo works with the access token
  const ui = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${tok4.json.access_token}` } });
  const uiJson = await ui.json();
  check('userinfo returns the same sub', ui.status === 200 && uiJson.sub === 'carol', uiJson);

  // bad control requests
  r = await control('identity', { email: 'x@example.com' });
  check('identity without sub -> 400', r.status === 400, r.status);
  r = await control('login-page', { on: 'yes' });
  check('login-page with non-boolean -> 400', r.status === 400, r.status);

  // 5) page mode: HTML form, POST username
  r = await control('login-page', { on: true });
  check('POST /__test/login-page -> 204', r.status === 204, r.status);
  const pageJar = new CookieJar();
  const page = await authorize(ISSUER, disco, pageJar, { stopAtHtml: true });
  check('page mode: login page is HTML 200', page.html?.status === 200
    && /text\/html/.test(page.html.contentType), page.trace);
  const html = page.html?.body ?? '';
  check('page mode: title', html.includes('<title>Test IdP — sign in</title>'));
  check('page mode: labelled Username input', /<label for="username">Username<\/label>/.test(html)
    && /<input id="username" name="username"/.test(html));
  check('page mode: Sign in button', /<button type="submit">Sign in<\/button>/.test(html));
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  check('page mode: form action under /interaction/', action?.startsWith('/interaction/'), action);
  const empty = await httpRequest(new URL(action, ISSUER).href, pageJar, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=',
  });
  check('page mode: empty username re-renders with an alert', empty.status === 400 && (await empty.text()).includes('role="alert"'));
  const submitted = await followRedirects(ISSUER, pageJar, new URL(action, ISSUER).href, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=zoe',
  });
  const pageFlow = { ...page, ...submitted };
  check('page mode: form POST ends at redirect_uri with code', !!pageFlow.code
    && pageFlow.params.get('state') === page.state, submitted.trace);
  const idPage = decodeJwt((await tokenRequest(disco, pageFlow, 'basic')).json.id_token);
  console.log('ID token claims from page mode:', JSON.stringify(idPage.payload));
  check('page mode: identity from username', idPage.payload.sub === 'user-zoe' && idPage.payload.email === 'zoe@example.com'
    && idPage.payload.email_verified === true && idPage.payload.preferred_username === 'zoe'
    && idPage.payload.name === 'zoe' && idPage.payload.nonce === page.nonce, idPage.payload);
  r = await control('login-page', { on: false });

  // 6) foreign key: same kid, different key material; real signature no longer verifies
  r = await control('foreign-key', { on: true });
  check('POST /__test/foreign-key -> 204', r.status === 204, r.status);
  const foreignJwks = await (await fetch(disco.jwks_uri)).json();
  const fk = foreignJwks.keys[0];
  console.log('JWKS kid/n (real)   :', realKey.kid, `${realKey.n.slice(0, 24)}…`);
  console.log('JWKS kid/n (foreign):', fk.kid, `${fk.n.slice(0, 24)}…`);
  check('foreign-key: same kid, different modulus', fk.kid === realKey.kid && fk.n !== realKey.n
    && fk.alg === 'RS256' && fk.kty === 'RSA', fk);
  const flowF = await authorize(ISSUER, disco, new CookieJar(), {});
  const tokF = await tokenRequest(disco, flowF, 'basic');
  const idF = decodeJwt(tokF.json.id_token);
  check('foreign-key: token still signed with the real key under that kid', idF.header.kid === fk.kid
    && verifyJwt(tokF.json.id_token, realKey));
  check('foreign-key: signature does NOT verify against the served JWKS', !verifyJwt(tokF.json.id_token, fk));
  r = await control('foreign-key', { on: false });
  const backJwks = await (await fetch(disco.jwks_uri)).json();
  check('foreign-key off: real key served again', backJwks.keys[0].n === realKey.n);

  // 7) extra: deny mode
  r = await control('deny', { on: true });
  const denied = await authorize(ISSUER, disco, new CookieJar(), {});
  check('deny mode: error=access_denied redirect with state', denied.params?.get('error') === 'access_denied'
    && denied.params.get('state') === denied.state, denied.trace);
  r = await control('deny', { on: false });

  // 8) unregistered redirect_uri is not redirected to
  const bad = await authorize(ISSUER, disco, new CookieJar(), { redirectUri: 'http://127.0.0.1:9/evil' });
  check('unregistered redirect_uri: 400 error page, no redirect', !bad.redirectedTo && bad.last?.status === 400, bad.trace);
}

// --- a tiny relying party -------------------------------------------------------------------------

async function authorize(ISSUER, disco, jar, opts) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const redirectUri = opts.redirectUri ?? REDIRECT_URI;
  const url = new URL(disco.authorization_endpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', CLIENT_ID);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('scope', opts.scope ?? 'openid email profile');
  url.searchParams.set('state', state);
  url.searchParams.set('nonce', nonce);
  if (!opts.omitPkce) {
    if (opts.method === 'plain') {
      url.searchParams.set('code_challenge', verifier);
      url.searchParams.set('code_challenge_method', 'plain');
    } else {
      url.searchParams.set('code_challenge', b64url(createHash('sha256').update(verifier).digest()));
      url.searchParams.set('code_challenge_method', 'S256');
    }
  }
  const result = await followRedirects(ISSUER, jar, url.href, { stopAtHtml: opts.stopAtHtml });
  return { ...result, verifier, state, nonce, redirectUri };
}

async function followRedirects(ISSUER, jar, startUrl, init = {}) {
  const trace = [];
  let url = startUrl;
  let reqInit = { method: init.method ?? 'GET', headers: init.headers, body: init.body };
  for (let i = 0; i < 20; i += 1) {
    const res = await httpRequest(url, jar, reqInit);
    const location = res.headers.get('location');
    trace.push({ method: reqInit.method, url, status: res.status, location: location ?? undefined });
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url).href;
      if (!next.startsWith(ISSUER)) {
        const params = new URL(next).searchParams;
        return { trace, redirectedTo: next, params, code: params.get('code') };
      }
      url = next;
      reqInit = { method: 'GET' };
      continue;
    }
    const body = await res.text();
    const last = { status: res.status, contentType: res.headers.get('content-type'), body };
    if (init.stopAtHtml) return { trace, html: last, last };
    return { trace, last };
  }
  throw new Error(`too many redirects: ${JSON.stringify(trace)}`);
}

async function tokenRequest(disco, flow, auth, secret = CLIENT_SECRET) {
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code: flow.code ?? '',
    redirect_uri: flow.redirectUri,
  });
  if (flow.verifier !== undefined) body.set('code_verifier', flow.verifier);
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${formEncode(CLIENT_ID)}:${formEncode(secret)}`).toString('base64')}`;
  } else {
    body.set('client_id', CLIENT_ID);
    body.set('client_secret', secret);
  }
  const res = await fetch(disco.token_endpoint, { method: 'POST', headers, body });
  return { status: res.status, json: await res.json() };
}

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

function verifyJwt(jwt, jwk) {
  const [h, p, s] = jwt.split('.');
  const key = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
  return verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
}

// --- a minimal cookie jar (host-only, path-scoped, honours deletion) --------------------------------

class CookieJar {
  constructor() { this.cookies = new Map(); }

  store(url, res) {
    for (const raw of res.headers.getSetCookie()) {
      const [pair, ...attrs] = raw.split(';').map((x) => x.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && new Date(v).getTime() <= Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name};${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

async function httpRequest(url, jar, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(url, { method: init.method ?? 'GET', headers, body: init.body, redirect: 'manual' });
  jar.store(url, res);
  return res;
}

// --- start the provider, run the checks, stop it ------------------------------------------------

async function main() {

  const child = spawn(process.execPath, [
    join(here, 'provider.mjs'), '--port', '0',
    '--client-id', CLIENT_ID, '--client-secret', CLIENT_SECRET,
    '--redirect-uri', REDIRECT_URI, '--redirect-uri', REDIRECT_URI_2,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderrLines = [];
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderrLines.push(d);
    if (verbose) process.stderr.write(d);
  });

  const stdoutLines = [];
  const firstLine = new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      stdoutLines.push(line);
      if (stdoutLines.length === 1) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`provider exited early (${code}): ${stderrLines.join('')}`)));
    setTimeout(() => reject(new Error('provider did not print its address within 20 s')), 20_000).unref();
  });

  let exitCode = 1;
  try {
    const line = await firstLine;
    const m = /^listening (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    check('prints "listening http://127.0.0.1:PORT"', m && Number(m[2]) > 0, line);
    const ISSUER = m[1];
    await run(ISSUER);

    // --- shutdown on SIGTERM, exit 0 -------------------------------------------------------------
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    check('SIGTERM exits 0', code === 0, { code, signal });
    check('stdout had exactly one line', stdoutLines.length === 1, stdoutLines);
    exitCode = failed === 0 ? 0 : 1;
  } catch (err) {
    failed += 1;
    console.log(`FAIL unexpected error: ${err.stack}`);
    if (!verbose) process.stderr.write(stderrLines.join(''));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? exitCode : 1);
}

await main();
