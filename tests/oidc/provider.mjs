// A real OpenID Provider (the npm package oidc-provider, OpenID Certified)
// on loopback for tests/sso.rs. Started by the tests, never by the bastion.
//
// Environment:
//   PORT           the port to listen on (127.0.0.1)
//   ACCOUNTS_FILE  JSON: {"alice": {"password": "...", "groups": ["eng"]}, ...}
//                  read at every sign-in and claims lookup, so a test changes
//                  a user's groups at the IdP by rewriting the file
//   CLIENT_SECRET  the secret of client "portcullis" (client_secret_basic)
//   REDIRECT_URIS  comma-separated redirect URIs of client "portcullis"
//
// Sign-in is the script's own interaction: GET /interaction/:uid shows a
// form, POST /interaction/:uid/login with login and password signs in and
// consents for the client at once (first-party).
//
// Misbehaviour on demand, for the refusal tests: POST /_test/mode/NAME
//   normal     as the standard says
//   aud        ID tokens carry another audience
//   iss        ID tokens name another issuer
//   nonce      ID tokens carry another nonce
//   sig        ID tokens signed with a key the provider never published,
//              under the published key's id (a forged signature)
//   rotate     the provider rotates its signing key: new kid, published in
//              the JWKS from now on (the relying party must fetch it)
//   expired    ID tokens expired an hour ago
import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accountsFile = process.env.ACCOUNTS_FILE;
const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);

const accounts = () => JSON.parse(fs.readFileSync(accountsFile, 'utf8'));

async function keyPair(kid) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, priv, pub };
}

const k1 = await keyPair('k1');
const rogue = await keyPair('k1'); // same kid, never published
const k2 = await keyPair('k2');
let mode = 'normal';

const oidc = new Provider(issuer, {
  clients: [{
    client_id: 'portcullis',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: redirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [k1.priv] },
  cookies: { keys: [randomUUID()] },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'groups'],
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        const a = accounts()[id] || {};
        return { sub: id, preferred_username: a.username || id, name: id, groups: a.groups || [] };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    return undefined;
  },
});

// The misbehaving modes rewrite the token endpoint's answer and the JWKS.
oidc.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/jwks' && mode === 'rotate' && ctx.body?.keys) {
    ctx.body = { keys: [...ctx.body.keys, k2.pub] };
  }
  if (ctx.path === '/token' && ctx.body?.id_token && mode !== 'normal') {
    const claims = jose.decodeJwt(ctx.body.id_token);
    let key = k1;
    if (mode === 'aud') claims.aud = 'another-client';
    if (mode === 'iss') claims.iss = 'http://127.0.0.1:1';
    if (mode === 'nonce') claims.nonce = 'not-the-nonce-you-sent';
    if (mode === 'expired') { claims.iat -= 7200; claims.exp = Math.floor(Date.now() / 1000) - 3600; }
    if (mode === 'sig') key = rogue;
    if (mode === 'rotate') key = k2;
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: key.priv.kid })
        .sign(key.privateKey),
    };
  }
});

const page = (body) => `<!doctype html><title>Test IdP</title>${body}`;

async function interaction(req, res, uid, action) {
  const details = await oidc.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html');
    res.end(page(`<form method="post" action="/interaction/${uid}/login">
<input name="login"><input name="password" type="password"><button>Sign in</button></form>`));
    return;
  }
  if (action !== 'login') { res.statusCode = 404; res.end(); return; }
  const body = await new Promise((ok) => {
    let s = '';
    req.on('data', (c) => { s += c; });
    req.on('end', () => ok(new URLSearchParams(s)));
  });
  const login = body.get('login');
  const a = accounts()[login];
  if (!a || a.password !== body.get('password')) {
    res.statusCode = 403;
    res.setHeader('content-type', 'text/html');
    res.end(page('<p>wrong login or password</p>'));
    return;
  }
  const grant = new oidc.Grant({ accountId: login, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await oidc.interactionFinished(req, res, {
    login: { accountId: login },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

const handler = oidc.callback();
http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/([a-z]+))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    const t = url.pathname.match(/^\/_test\/mode\/([a-z]+)$/);
    if (t && req.method === 'POST') {
      mode = t[1];
      res.end(mode);
      return;
    }
    return handler(req, res);
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e));
  }
}).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
