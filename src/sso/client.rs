//! The relying party's side of the wire, through the `openidconnect` crate
//! over our `reqwest` (no redirects followed: an IdP answer that redirects
//! the back channel is an error, not a hop): discovery, the authorization
//! URL (code flow, PKCE S256, state, nonce), the code exchange and the ID
//! token's checks (signature against the IdP's JWKS, issuer, audience,
//! expiry, nonce). On a key the cached JWKS does not hold, the JWKS is
//! fetched again once (key rotation) and the token checked again.
//!
//! The one HTTP client outside `admin/` besides the lock webhook
//! (`tests/layering.rs` names this file).

use super::SsoError;
use crate::config::sso::Provider;
use crate::sync::MutexExt;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Discovery is fetched again after this long (and on an unknown key).
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Every call to the IdP gives up after this long: a hung IdP fails the
/// sign-in, it does not hold it.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed discovery, sign-ins fail at once for this long rather
/// than each asking the IdP again (anyone may start a console sign-in).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One configured provider: its settings, secret and cached metadata.
pub struct Rp {
    pub cfg: Provider,
    secret: ClientSecret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
    failed_at: Mutex<Option<Instant>>,
}

/// What starting a sign-in hands back: the IdP URL to send the browser
/// to, and what the callback needs to finish it.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl Rp {
    pub fn new(cfg: Provider, secret: String, redirect: &str) -> Result<Rp, SsoError> {
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|_| SsoError::Config(format!("redirect URI {redirect:?} is not a URL")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(IDP_TIMEOUT)
            .build()
            .map_err(|e| SsoError::Config(format!("HTTP client: {e}")))?;
        Ok(Rp {
            cfg,
            secret: ClientSecret::new(secret),
            redirect,
            http,
            metadata: Mutex::new(None),
            failed_at: Mutex::new(None),
        })
    }

    fn unreachable(&self, what: &str, e: impl std::fmt::Display) -> SsoError {
        tracing::warn!(provider = %self.cfg.name, error = %e, "{what}");
        SsoError::Unreachable(self.cfg.name.clone())
    }

    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, SsoError> {
        if !fresh
            && let Some((m, at)) = self.metadata.lock_or_recover().as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        if self
            .failed_at
            .lock_or_recover()
            .is_some_and(|t| t.elapsed() < RETRY_AFTER)
        {
            return Err(SsoError::Unreachable(self.cfg.name.clone()));
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| SsoError::Config(format!("issuer: {e}")))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                *self.failed_at.lock_or_recover() = Some(Instant::now());
                self.unreachable("OIDC discovery failed", e)
            })?;
        *self.metadata.lock_or_recover() = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        &self,
        m: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.cfg.client_id.clone()),
            Some(self.secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// The IdP's authorization URL for a new sign-in.
    pub async fn start(&self) -> Result<Started, SsoError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in self.cfg.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code and checks the ID token; its verified claims.
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SsoError> {
        let client = self.client(self.metadata(false).await?);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Config(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(e) => {
                    self.unreachable("OIDC token request failed", e)
                }
                other => {
                    tracing::warn!(provider = %self.cfg.name, error = %other, "IdP refused the code");
                    SsoError::Refused("the identity provider refused the sign-in")
                }
            })?;
        let Some(id_token) = token.id_token() else {
            return Err(SsoError::Token("no ID token in the answer".into()));
        };
        let nonce = Nonce::new(nonce.to_string());
        let checked = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .map(|_| ());
        let checked = match checked {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Key rotation: fetch the JWKS again, check once more.
                tracing::info!(provider = %self.cfg.name, "ID token signed with a key not in the cached JWKS; fetching the JWKS again");
                let mut m = self.metadata(false).await?;
                let jwks = CoreJsonWebKeySet::fetch_async(m.jwks_uri(), &self.http)
                    .await
                    .map_err(|e| self.unreachable("JWKS fetch failed", e))?;
                m = m.set_jwks(jwks);
                *self.metadata.lock_or_recover() = Some((m.clone(), Instant::now()));
                let client = self.client(m);
                id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map(|_| ())
            }
            other => other,
        };
        if let Err(e) = checked {
            tracing::warn!(provider = %self.cfg.name, error = %e, "ID token refused");
            return Err(SsoError::Token(e.to_string()));
        }
        // Verified above: its payload is read as plain JSON for the
        // configured username and groups claims, whatever their names.
        let jwt = id_token.to_string();
        let payload = jwt
            .split('.')
            .nth(1)
            .ok_or_else(|| SsoError::Token("malformed ID token".into()))?;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SsoError::Token("malformed ID token".into()))?;
        match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(SsoError::Token("malformed ID token".into())),
        }
    }
}
