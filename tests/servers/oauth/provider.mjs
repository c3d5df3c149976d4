// OAuth 2.0 authorization server for mailwire's tests, started by
// tests/servers/start-oauth.sh.  Not a template for production: any login
// name with any password signs in, keys are generated at start, and all
// state is in memory.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: { "oidc": "file URL of oidc-provider's entry point",
//           "https_port": N, "badcert_port": N, "http_port": N,
//           "cert": "good.pem", "key": "good.key",
//           "badcert": "selfsigned.pem", "badkey": "selfsigned.key",
//           "access_ttl": seconds, "short_ttl": seconds,
//           "introspect_secret": "..." }
//
// One provider, three listeners on 127.0.0.1: HTTPS with the test CA's
// certificate (clients), HTTPS with a self-signed one (the bad-certificate
// test), plain HTTP (Dovecot's introspection).  Issuer: the first.
//
// Clients: "mailwire" (public, native: device code, authorization code with
// PKCE S256 and a loopback redirect per RFC 8252 section 7.3, refresh) and
// "dovecot" (confidential, introspection only).

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider, errors } = await import(cfg.oidc);

const issuer = `https://127.0.0.1:${cfg.https_port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'mailwire',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'dovecot',
      client_secret: cfg.introspect_secret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  // "short": access tokens of this grant live short_ttl seconds (the
  // expiry-during-fetch test); all others access_ttl.
  scopes: ['openid', 'offline_access', 'mail', 'short'],
  claims: { openid: ['sub'] },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: {
      enabled: true,
      // Dovecot ignores token_type, and a refresh token is "active" too:
      // only access tokens may be seen by the resource server, else a
      // refresh token would log in as a bearer token.
      async allowedPolicy(ctx, client, token) {
        return client.clientId === 'dovecot' && token.kind === 'AccessToken';
      },
    },
  },
  pkce: { required: () => true, methods: ['S256'] },
  ttl: {
    AccessToken(ctx, token) {
      return String(token.scope || '').split(' ').includes('short') ? cfg.short_ttl : cfg.access_ttl;
    },
    DeviceCode: 600,
    RefreshToken: 86400,
    Grant: 86400,
    Interaction: 600,
    Session: 86400,
  },
  // Dovecot's passdb oauth2 takes the user name from this claim
  // (username_attribute).
  async extraTokenClaims(ctx, token) {
    return token.accountId ? { username: token.accountId } : undefined;
  },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  // A refresh token for the native client whenever offline_access was
  // asked for, also without prompt=consent.
  async issueRefreshToken(ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  cookies: { keys: ['mailwire-test-cookie-key'] },
  renderError(ctx, out) {
    ctx.type = 'text/plain';
    ctx.body = `error: ${out.error}\n${out.error_description || ''}\n`;
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
void errors;

const app = provider.callback();
const listen = (srv, port) => new Promise((resolve, reject) => {
  srv.once('error', reject);
  srv.listen(port, '127.0.0.1', resolve);
});
await listen(https.createServer({
  cert: readFileSync(cfg.cert), key: readFileSync(cfg.key),
}, app), cfg.https_port);
await listen(https.createServer({
  cert: readFileSync(cfg.badcert), key: readFileSync(cfg.badkey),
}, app), cfg.badcert_port);
await listen(http.createServer(app), cfg.http_port);
console.log(`provider up: ${issuer} (self-signed ${cfg.badcert_port}, http ${cfg.http_port}, access token ${cfg.access_ttl} s, scope short ${cfg.short_ttl} s)`);
